# Environment "prd": every per-environment value of every stack. Keys are documented in the README
# ("Configuration reference"); unknown keys are errors. No secrets here, ever.
environment   = "prd"
aws_region    = "us-east-1"
is_production = true

# "local" until the state bucket exists (first bootstrap), then "s3" and `make migrate-bootstrap`.
bootstrap_state = "s3"

tags = {
  Owner      = "mlops-platform"
  CostCenter = "ml-prd"
}

state_bucket = {
  sse_algorithm                          = "aws:kms"
  noncurrent_version_expiration_days     = 365
  abort_incomplete_multipart_upload_days = 7
}

network = {
  vpc_cidr              = "10.30.0.0/16"
  availability_zones    = ["us-east-1a", "us-east-1b", "us-east-1c"]
  public_subnet_cidrs   = ["10.30.0.0/24", "10.30.1.0/24", "10.30.2.0/24"]
  private_subnet_cidrs  = ["10.30.16.0/20", "10.30.32.0/20", "10.30.48.0/20"]
  database_subnet_cidrs = ["10.30.64.0/24", "10.30.65.0/24", "10.30.66.0/24"]
  single_nat_gateway    = false
}

# --- MLflow platform stack (mlflow-<env>) ---------------------------------------------------
mlflow = {
}

# --- Databricks MLOps stack (databricks-<env>) ----------------------------------------------
databricks = {
}
