# Environment "prd": every per-environment value of every stack. Every key, its type, default
# and rules: docs/configuration.md; unknown keys are errors. No secrets here, ever.
environment   = "prd"
aws_region    = "us-east-1"
is_production = true

# "local" until the state bucket exists (first bootstrap), then "s3" and `make state-migrate`
# (docs/runbooks/bootstrap.md).
bootstrap_state = "s3"

tags = {
  Owner      = "mlops-platform"
  CostCenter = "ml-prd"
}

# GitHub Actions identities (bootstrap-prd): jobs of GitHub Environment "prd-plan" may assume the
# plan role, jobs of "prd" the deploy role (docs/runbooks/ci-cd.md).
# prd has an AWS account of its own, and so its own GitHub OIDC provider.
ci = {
  github_repository = "example-org/mlops-infra" # replace with the repository's owner/name
  oidc_provider     = "create"
}

state_bucket = {
  sse_algorithm                          = "aws:kms"
  noncurrent_version_expiration_days     = 365
  abort_incomplete_multipart_upload_days = 7
  access_log_expiration_days             = 365
  # A copy of every state version outside aws_region, encrypted with its own key there.
  replication = {
    enabled = true
    region  = "us-west-2"
  }
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
  mlflow_version     = "3.17.2"
  log_retention_days = 365

  server = {
    # Amazon Linux 2023 (kernel-default, x86_64) of aws_region; a stand-in until the first bump
    # (docs/stacks/mlflow.md, "Bumping the AMI").
    ami_id = "ami-0abcdef1234567890"
    # The certificate's name; a CNAME to the load balancer (the certificate cannot cover *.elb.amazonaws.com).
    allowed_hosts      = ["mlflow-prd.example.com"]
    instance_type      = "m6i.large"
    min_size           = 3
    max_size           = 6
    desired_capacity   = 3
    workers            = 4
    cpu_target_percent = 60
  }

  database = {
    # MySQL 8.4 for a new database. An existing 8.0 database says "8.0" here until
    # `python -m ops db upgrade-engine` upgrades it (docs/runbooks/mysql-major-upgrade.md).
    engine_version           = "8.4"
    instance_class           = "db.r5.xlarge"
    allocated_storage_gb     = 100
    max_allocated_storage_gb = 1000
    backup_retention_days    = 30
    multi_az                 = true
    deletion_protection      = true
    performance_insights     = true
    monitoring_interval      = 60
    log_exports              = ["error", "slowquery"]
  }

  cache = {
    enabled                 = true
    node_type               = "cache.r7g.large"
    num_nodes               = 2
    snapshot_retention_days = 7
  }

  load_balancer = {
    ingress_cidrs       = ["203.0.113.0/24", "198.51.100.0/24"] # replace with your corporate egress ranges
    certificate_arn     = "arn:aws:acm:us-east-1:111122223333:certificate/11111111-1111-1111-1111-111111111111"
    ssl_policy          = "ELBSecurityPolicy-TLS13-1-2-2021-06"
    deletion_protection = true
  }

  storage = {
    noncurrent_version_expiration_days = 365
    log_expiration_days                = 730
  }

  alerts = {
    emails = ["mlops-oncall@example.com"]
  }

  # Sign-in (docs/stacks/mlflow.md, Sign-in): the administrator created at the first start (its
  # password is generated in Secrets Manager, never here), and what a signed-in user may do with
  # an experiment or model nobody granted them anything on.
  auth = {
    admin_username     = "admin" # replace: MLflow's default name is refused by plan and deploy
    default_permission = "NO_PERMISSIONS"
  }
}

# --- Databricks MLOps stack (databricks-<env>) ----------------------------------------------
databricks = {
  # Adopts the bundle's prod state (seed 000; tests/fixtures/databricks_seed_state.md says which of
  # its values are assumptions). `python -m ops adopt --env prd` compares every name below with the
  # pulled state, refuses on a mismatch, and refuses any change of what the jobs do that is not
  # written here (docs/runbooks/adopt-state.md). The host is a documentation placeholder: plan and
  # deploy refuse until it is the real workspace URL.
  host    = "https://adb-1234567890123456.7.azuredatabricks.net"
  cloud   = "azure"
  project = "my_mlops_project_luv_v6"
  target  = "prod"
  catalog = "prod"

  # Who plans, applies and runs (docs/stacks/databricks.md, "Identities"); documentation
  # placeholders until the real application ids are written here (plan and deploy refuse them).
  # The prod service principal applies; the jobs run as their own service principal.
  deploy_principal         = "88888888-8888-8888-8888-888888888888"
  plan_principal           = "77777777-7777-7777-7777-777777777777"
  run_as_service_principal = "99999999-9999-9999-9999-999999999999"
  # The federation policies' `audiences` (the Databricks account id): runbook ci-cd.md.
  oidc_audience = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"
  # A person deployed prod: the bundle's state and the experiment are under their folder, and
  # they own the jobs (only a workspace admin can transfer them; until then they stay the owner).
  deployer  = "maaheshwarispandan97@outlook.com"
  job_owner = "maaheshwarispandan97@outlook.com"
  # Intended change on adoption: the jobs stop reading the person's stale copy and read what the
  # project's files-only bundle deploy uploads as the prod service principal (runbook step 2).
  files_root = "/Workspace/Users/88888888-8888-8888-8888-888888888888/.bundle/my_mlops_project_luv_v6/prod/files"

  # storage_location stays unset: Unity Catalog chose the seed's abfss:// location, and setting a
  # different one would replace the model.
  # The template's comment, as the state holds it (assumed): no change on adoption. The owner is the
  # run-as principal (only the owner adds versions and sets aliases); the person transfers it before
  # adoption (runbook), so the first plan reads it back unchanged.
  model = {
    comment = "Registered model in Unity Catalog for the \"my_mlops_project_luv_v6\" ML Project for prod deployment target."
    owner   = "99999999-9999-9999-9999-999999999999"
  }
  model_execute_principals = ["account users"]
  experiment_read_groups   = ["users"]

  training = {
    layout = "notebooks"
    tasks = [
      { key = "01-PDF-Advance-Data-Preprocessing", notebook = "rag_code_files/01_pdf_chuncks_embidings" },
      { key = "02-Advanced-Chatbot-Chain", notebook = "rag_code_files/02_Advance_chabot_chain" },
      { key = "03-Offline-Evaluation", notebook = "rag_code_files/03_offline_evaluation" },
      { key = "04-Deploy-Model-As-Endpoint", notebook = "rag_code_files/04_Deploy_model_as_endpoint" },
    ]
    # ASSUMED (the project's docs, not seed 000): the shared single-node cluster both jobs ran on.
    # The run-as principal must be allowed on it (CAN_ATTACH_TO, and not a single-user cluster of
    # somebody else): check before adopting, or unset both ids to use a job cluster (runbook).
    existing_cluster_id = "0415-213012-yi87kqjn"
    schedule = {
      cron     = "0 0 9 * * ?"
      timezone = "UTC"
    }
  }

  batch_inference = {
    # The adopted job's table (the template's, without feature store): unchanged on adoption.
    input_table = "taxi_scoring_sample"
    # Written, so the bundle's git_source_info (the url, branch and commit of its last deploy)
    # goes: an intended change `ops adopt` lists.
    parameters          = {}
    existing_cluster_id = "0415-213012-yi87kqjn"
    schedule = {
      cron     = "0 0 11 * * ?"
      timezone = "UTC"
    }
  }

  notifications = {
    on_failure = ["mlops-platform@example.com", "mlops-oncall@example.com"]
  }

  max_retries         = 1
  timeout_seconds     = 14400
  max_concurrent_runs = 1
}
