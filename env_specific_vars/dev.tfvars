# Environment "dev": every per-environment value of every stack. Every key, its type, default
# and rules: docs/configuration.md; unknown keys are errors. No secrets here, ever.
environment   = "dev"
aws_region    = "us-east-1"
is_production = false

# "local" until the state bucket exists (first bootstrap), then "s3" and `make state-migrate`
# (docs/runbooks/bootstrap.md).
bootstrap_state = "s3"

tags = {
  Owner      = "mlops-platform"
  CostCenter = "ml-dev"
}

# GitHub Actions identities (bootstrap-dev): jobs of GitHub Environment "dev-plan" may assume the
# plan role, jobs of "dev" the deploy role (docs/runbooks/ci-cd.md).
# dev and tst share an AWS account: dev creates the account's GitHub OIDC provider.
ci = {
  github_repository = "example-org/mlops-infra" # replace with the repository's owner/name
  oidc_provider     = "create"
}

state_bucket = {
  sse_algorithm                          = "aws:kms"
  noncurrent_version_expiration_days     = 90
  abort_incomplete_multipart_upload_days = 7
  access_log_expiration_days             = 90
  replication = {
    enabled = false
  }
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
  mlflow_version     = "3.17.2"
  log_retention_days = 30

  server = {
    # Amazon Linux 2023 (kernel-default, x86_64) of aws_region; a stand-in until the first bump
    # (docs/stacks/mlflow.md, "Bumping the AMI").
    ami_id           = "ami-0abcdef1234567890"
    instance_type    = "t3.medium"
    min_size         = 1
    max_size         = 2
    desired_capacity = 1
    workers          = 2
  }

  database = {
    # MySQL 8.4 for a new database. An existing 8.0 database says "8.0" here until
    # `python -m ops db upgrade-engine` upgrades it (docs/runbooks/mysql-major-upgrade.md).
    engine_version           = "8.4"
    instance_class           = "db.t3.micro"
    allocated_storage_gb     = 20
    max_allocated_storage_gb = 100
    backup_retention_days    = 7
    multi_az                 = false
    deletion_protection      = false
    performance_insights     = false # not offered on db.t3.micro
    monitoring_interval      = 0
    log_exports              = ["error", "slowquery"]
  }

  # Off in dev: MLflow queues its jobs in Redis only when it is on (docs/decisions/redis.md).
  cache = {
    enabled = false
  }

  # HTTPS, as everywhere (sign-in sends passwords): the stack creates the certificate and the alias
  # record of host_name in this public Route 53 zone (or set certificate_arn to an existing one).
  load_balancer = {
    ingress_cidrs       = ["203.0.113.0/24"] # replace with your office / VPN egress ranges
    hosted_zone_id      = "Z3M3LMPEXAMPLE"   # replace with your public hosted zone
    host_name           = "mlflow-dev.example.com"
    deletion_protection = false
  }

  storage = {
    noncurrent_version_expiration_days = 30
    log_expiration_days                = 90
  }

  alerts = {
    emails = ["mlops-dev-alerts@example.com"]
  }

  # Sign-in (docs/stacks/mlflow.md, Sign-in): the administrator created at the first start (its
  # password is generated in Secrets Manager, never here), and what a signed-in user may do with
  # an experiment or model nobody granted them anything on.
  auth = {
    admin_username     = "admin" # replace: MLflow's default name is refused by plan and deploy
    default_permission = "READ"
  }
}

# --- Databricks MLOps stack (databricks-<env>) ----------------------------------------------
databricks = {
  # deployer: the staging service principal deployed the bundle's test target (the template
  # deploys test and staging as it); its bundle root holds the notebooks and the state that
  # `ops adopt --env dev` takes over.
  # Same workspace as tst and prd: the bundle's targets are folders of one workspace (seed 001).
  host     = "https://adb-1234567890123456.7.azuredatabricks.net"
  cloud    = "azure"
  project  = "my_mlops_project_luv_v6"
  target   = "test"
  deployer = "22222222-2222-2222-2222-222222222222"

  # Who plans, applies and runs (docs/stacks/databricks.md, "Identities"); documentation
  # placeholders until the real application ids are written here (plan and deploy refuse them).
  # The deploy principal is the staging service principal, which owns the target's jobs.
  deploy_principal         = "22222222-2222-2222-2222-222222222222"
  plan_principal           = "33333333-3333-3333-3333-333333333333"
  run_as_service_principal = "55555555-5555-5555-5555-555555555555"
  # The federation policies' `audiences` (the Databricks account id): runbook ci-cd.md.
  oidc_audience = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"

  model = {
    comment = "Test copy of the my_mlops_project_luv_v6 model (pushes to main)"
  }

  # The project's RAG pipeline (seed 002's workflow), not the template's Train/Validate/Deploy.
  training = {
    layout = "notebooks"
    tasks = [
      { key = "01-PDF-Advance-Data-Preprocessing", notebook = "rag_code_files/01_pdf_chuncks_embidings" },
      { key = "02-Advanced-Chatbot-Chain", notebook = "rag_code_files/02_Advance_chabot_chain" },
      { key = "03-Offline-Evaluation", notebook = "rag_code_files/03_offline_evaluation" },
      { key = "04-Deploy-Model-As-Endpoint", notebook = "rag_code_files/04_Deploy_model_as_endpoint" },
    ]
  }

  # Single node: test runs process one PDF only.
  job_cluster = {
    num_workers = 0
  }

  notifications = {
    on_failure = ["mlops-platform@example.com"]
  }
}
