//! Prints the VirtualCluster CRD as YAML on stdout:
//! `cargo run -p nestkube-tenant-crds --bin gen-crd > tenant-crds/crd/virtualcluster.yaml`.

fn main() {
    print!("{}", nestkube_tenant_crds::crd_yaml());
}
