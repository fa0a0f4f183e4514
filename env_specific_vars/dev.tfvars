# Environment "dev": every per-environment value of every stack. Keys are documented in the README
# ("Configuration reference"); unknown keys are errors. No secrets here, ever.
environment   = "dev"
aws_region    = "us-east-1"
is_production = false

# "local" until the state bucket exists (first bootstrap), then "s3" and `make migrate-bootstrap`.
bootstrap_state = "s3"

tags = {
  Owner      = "mlops-platform"
  CostCenter = "ml-dev"
}

state_bucket = {
  sse_algorithm                          = "aws:kms"
  noncurrent_version_expiration_days     = 90
  abort_incomplete_multipart_upload_days = 7
}

network = {
  vpc_cidr              = "10.10.0.0/16"
  availability_zones    = ["us-east-1a", "us-east-1b"]
  public_subnet_cidrs   = ["10.10.0.0/24", "10.10.1.0/24"]
  private_subnet_cidrs  = ["10.10.16.0/20", "10.10.32.0/20"]
  database_subnet_cidrs = ["10.10.64.0/24", "10.10.65.0/24"]
  single_nat_gateway    = true
}

# --- MLflow platform stack (mlflow-<env>) ---------------------------------------------------
mlflow = {
}

# --- Databricks MLOps stack (databricks-<env>) ----------------------------------------------
databricks = {
}
