# The Dataflow workers' network. Workers get no public IPs (runner.dataflow.use_public_ips: false),
# so their subnetwork has Private Google Access to reach Cloud Storage, Artifact Registry and the
# Dataflow service. configs/vertex-*.yaml name it: regions/<region>/subnetworks/dataflow.

resource "google_compute_network" "pipelines" {
  project                 = var.project
  name                    = "tfx-pipelines"
  auto_create_subnetworks = false
  depends_on              = [google_project_service.services]
}

resource "google_compute_subnetwork" "dataflow" {
  project                    = var.project
  name                       = "dataflow"
  region                     = var.region
  network                    = google_compute_network.pipelines.id
  ip_cidr_range              = var.dataflow_subnet_cidr
  private_ip_google_access   = true
  private_ipv6_google_access = "ENABLE_OUTBOUND_VM_ACCESS_TO_GOOGLE"

  log_config {
    aggregation_interval = "INTERVAL_10_MIN"
    flow_sampling        = 0.1
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Dataflow workers talk to each other on TCP 12345 (streaming) and 12346 (batch shuffle); workers
# carry the network tag "dataflow". Nothing else is allowed in.
resource "google_compute_firewall" "dataflow_workers" {
  project     = var.project
  name        = "tfx-dataflow-workers"
  network     = google_compute_network.pipelines.name
  direction   = "INGRESS"
  source_tags = ["dataflow"]
  target_tags = ["dataflow"]

  allow {
    protocol = "tcp"
    ports    = ["12345-12346"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
