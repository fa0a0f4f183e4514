# Environment "tst": every per-environment value of every stack. Every key, its type, default
# and rules: docs/configuration.md; unknown keys are errors. No secrets here, ever.
environment   = "tst"
aws_region    = "us-east-1"
is_production = false

# "local" until the state bucket exists (first bootstrap), then "s3" and `make state-migrate`
# (docs/runbooks/bootstrap.md).
bootstrap_state = "s3"

tags = {
  Owner      = "mlops-platform"
  CostCenter = "ml-tst"
}

# GitHub Actions identities (bootstrap-tst): jobs of GitHub Environment "tst-plan" may assume the
# plan role, jobs of "tst" the deploy role (docs/runbooks/ci-cd.md).
# dev and tst share an AWS account: dev's bootstrap creates the OIDC provider.
ci = {
  github_repository = "example-org/mlops-infra" # replace with the repository's owner/name
  oidc_provider     = "existing"
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
  vpc_cidr              = "10.20.0.0/16"
  availability_zones    = ["us-east-1a", "us-east-1b"]
  public_subnet_cidrs   = ["10.20.0.0/24", "10.20.1.0/24"]
  private_subnet_cidrs  = ["10.20.16.0/20", "10.20.32.0/20"]
  database_subnet_cidrs = ["10.20.64.0/24", "10.20.65.0/24"]
  single_nat_gateway    = false
}

# --- MLflow platform stack (mlflow-<env>) ---------------------------------------------------
mlflow = {
  mlflow_version     = "3.17.2"
  log_retention_days = 90

  server = {
    # Amazon Linux 2023 (kernel-default, x86_64) of aws_region; a stand-in until the first bump
    # (docs/stacks/mlflow.md, "Bumping the AMI").
    ami_id = "ami-0abcdef1234567890"
    # The certificate's name; a CNAME to the load balancer (the certificate cannot cover *.elb.amazonaws.com).
    allowed_hosts = ["mlflow-tst.example.com"]
    # 8 GiB: with the cache on, MLflow also runs its job queue (8 processes, about 1.4 GiB), which
    # leaves a t3.medium room for one worker (docs/stacks/mlflow.md, "Sizing the instances").
    instance_type    = "t3.large"
    min_size         = 1
    max_size         = 2
    desired_capacity = 1
    workers          = 2
  }

  database = {
    # MySQL 8.4 for a new database. An existing 8.0 database says "8.0" here until
    # `python -m ops db upgrade-engine` upgrades it (docs/runbooks/mysql-major-upgrade.md).
    engine_version           = "8.4"
    instance_class           = "db.t3.medium"
    allocated_storage_gb     = 20
    max_allocated_storage_gb = 200
    backup_retention_days    = 7
    multi_az                 = false
    deletion_protection      = false
    performance_insights     = true
    monitoring_interval      = 60
    log_exports              = ["error", "slowquery"]
  }

  cache = {
    enabled   = true
    node_type = "cache.t4g.micro"
    num_nodes = 2
  }

  load_balancer = {
    ingress_cidrs       = ["203.0.113.0/24"] # replace with your office / VPN egress ranges
    certificate_arn     = "arn:aws:acm:us-east-1:111122223333:certificate/00000000-0000-0000-0000-000000000000"
    deletion_protection = false
  }

  storage = {
    noncurrent_version_expiration_days = 60
    log_expiration_days                = 180
  }

  alerts = {
    emails = ["mlops-tst-alerts@example.com"]
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
  # deployer: the staging service principal deployed the bundle's staging target (the template
  # deploys test and staging as it); its bundle root holds the notebooks and the state that
  # `ops adopt --env tst` takes over.
  host     = "https://adb-1234567890123456.7.azuredatabricks.net"
  cloud    = "azure"
  project  = "my_mlops_project_luv_v6"
  target   = "staging"
  deployer = "22222222-2222-2222-2222-222222222222"

  # Who plans, applies and runs (docs/stacks/databricks.md, "Identities"); documentation
  # placeholders until the real application ids are written here (plan and deploy refuse them).
  # The deploy principal is the staging service principal, which owns the target's jobs.
  deploy_principal         = "22222222-2222-2222-2222-222222222222"
  plan_principal           = "44444444-4444-4444-4444-444444444444"
  run_as_service_principal = "66666666-6666-6666-6666-666666666666"
  # The federation policies' `audiences` (the Databricks account id): runbook ci-cd.md.
  oidc_audience = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"

  model = {
    comment = "Staging copy of the my_mlops_project_luv_v6 model (tests passed)"
  }

  training = {
    layout = "notebooks"
    tasks = [
      { key = "01-PDF-Advance-Data-Preprocessing", notebook = "rag_code_files/01_pdf_chuncks_embidings" },
      { key = "02-Advanced-Chatbot-Chain", notebook = "rag_code_files/02_Advance_chabot_chain" },
      { key = "03-Offline-Evaluation", notebook = "rag_code_files/03_offline_evaluation" },
      { key = "04-Deploy-Model-As-Endpoint", notebook = "rag_code_files/04_Deploy_model_as_endpoint" },
    ]
  }

  job_cluster = {
    num_workers = 3
  }

  notifications = {
    on_failure = ["mlops-platform@example.com"]
  }

  max_retries     = 1
  timeout_seconds = 14400
}
