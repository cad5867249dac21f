//! `nestkube vc ...` and the demo cluster of `nestkube up`: VirtualClusters
//! through the API of a nestkube (or any Kubernetes) server, with kube-rs.
//!
//! Every function here is a thin wrapper over API calls; provisioning is the
//! server's VirtualCluster controller's job, never this module's.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config, config::KubeConfigOptions, config::Kubeconfig};
use nestkube_tenant_crds::{
    IsolationSpec, KUBECONFIG_SECRET_KEY, SecretKeyRef, VirtualCluster, VirtualClusterSpec,
};

/// How long `create` and `up` wait for a VirtualCluster to become Ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A client for the cluster named by the kubeconfig at `path`.
pub async fn client(path: &Path) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("loading kubeconfig")?;
    Ok(Client::try_from(config)?)
}

fn api(client: &Client, namespace: &str) -> Api<VirtualCluster> {
    Api::namespaced(client.clone(), namespace)
}

/// The VirtualCluster `name` with default settings and, optionally, a
/// default RuntimeClass.
pub fn new_virtual_cluster(name: &str, runtime_class: Option<String>) -> VirtualCluster {
    VirtualCluster::new(
        name,
        VirtualClusterSpec {
            isolation: IsolationSpec {
                runtime_class_name: runtime_class,
                ..Default::default()
            },
            ..Default::default()
        },
    )
}

/// Waits until `name` is Ready (or `timeout` passes); returns it.
pub async fn wait_ready(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<VirtualCluster> {
    let ready = |vc: Option<&VirtualCluster>| {
        vc.and_then(|v| v.status.as_ref())
            .is_some_and(|s| s.is_ready())
    };
    let found = tokio::time::timeout(
        timeout,
        await_condition(api(client, namespace), name, ready),
    )
    .await
    .with_context(|| format!("VirtualCluster {namespace}/{name} not Ready after {timeout:?}"))??;
    found.with_context(|| format!("VirtualCluster {namespace}/{name} was deleted"))
}

/// Creates VirtualCluster `name` and waits until it is Ready.
pub async fn create(
    client: &Client,
    namespace: &str,
    name: &str,
    runtime_class: Option<String>,
) -> anyhow::Result<VirtualCluster> {
    api(client, namespace)
        .create(
            &PostParams::default(),
            &new_virtual_cluster(name, runtime_class),
        )
        .await
        .with_context(|| format!("creating VirtualCluster {namespace}/{name}"))?;
    wait_ready(client, namespace, name, READY_TIMEOUT).await
}

/// Creates VirtualCluster `name` unless it exists; waits until it is Ready.
pub async fn ensure(
    client: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<VirtualCluster> {
    if api(client, namespace).get_opt(name).await?.is_none() {
        return create(client, namespace, name, None).await;
    }
    wait_ready(client, namespace, name, READY_TIMEOUT).await
}

/// One line of `nestkube vc list`.
fn row(vc: &VirtualCluster) -> String {
    let status = vc.status.clone().unwrap_or_default();
    let ready = status
        .condition(nestkube_tenant_crds::CONDITION_READY)
        .map(|c| c.status.clone())
        .unwrap_or_else(|| "Unknown".into());
    let phase = status
        .phase
        .map(|p| format!("{p:?}"))
        .unwrap_or_else(|| "Pending".into());
    format!(
        "{:<20} {:<20} {:<8} {:<12} {}",
        vc.metadata.namespace.as_deref().unwrap_or(""),
        vc.metadata.name.as_deref().unwrap_or(""),
        ready,
        phase,
        status.endpoint.unwrap_or_default()
    )
}

/// The `nestkube vc list` table of the VirtualClusters in `namespace`
/// (every namespace when `None`).
pub async fn list(client: &Client, namespace: Option<&str>) -> anyhow::Result<String> {
    let api: Api<VirtualCluster> = match namespace {
        Some(ns) => api(client, ns),
        None => Api::all(client.clone()),
    };
    let mut out = format!(
        "{:<20} {:<20} {:<8} {:<12} {}\n",
        "NAMESPACE", "NAME", "READY", "PHASE", "ENDPOINT"
    );
    for vc in api.list(&ListParams::default()).await? {
        out.push_str(&row(&vc));
        out.push('\n');
    }
    Ok(out)
}

/// VirtualCluster `name` as YAML.
pub async fn get(client: &Client, namespace: &str, name: &str) -> anyhow::Result<String> {
    let vc = api(client, namespace).get(name).await?;
    Ok(serde_yaml::to_string(&vc)?)
}

/// Deletes VirtualCluster `name` and waits until its teardown is done.
pub async fn delete(client: &Client, namespace: &str, name: &str) -> anyhow::Result<()> {
    let api = api(client, namespace);
    let uid = api
        .get(name)
        .await
        .with_context(|| format!("VirtualCluster {namespace}/{name}"))?
        .metadata
        .uid
        .unwrap_or_default();
    api.delete(name, &DeleteParams::default()).await?;
    tokio::time::timeout(
        READY_TIMEOUT,
        await_condition(api, name, conditions::is_deleted(&uid)),
    )
    .await
    .context("VirtualCluster teardown did not finish")??;
    Ok(())
}

/// The admin kubeconfig of VirtualCluster `name` (from its Secret).
pub async fn kubeconfig(client: &Client, namespace: &str, name: &str) -> anyhow::Result<String> {
    let vc = api(client, namespace).get(name).await?;
    let reference = vc
        .status
        .and_then(|s| s.kubeconfig_secret_ref)
        .unwrap_or_else(|| SecretKeyRef::kubeconfig_for(name));
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get(&reference.name)
        .await
        .with_context(|| format!("kubeconfig Secret {namespace}/{}", reference.name))?;
    let Some(bytes) = secret.data.and_then(|mut d| d.remove(&reference.key)) else {
        bail!(
            "Secret {namespace}/{} has no key {:?} (expected {KUBECONFIG_SECRET_KEY:?})",
            reference.name,
            reference.key
        );
    };
    Ok(String::from_utf8(bytes.0)?)
}

/// `nestkube up`'s demo: ensures VirtualCluster `name` in `default` of the
/// cluster behind `root_kubeconfig`, waits for Ready, and writes its admin
/// kubeconfig to `out` (owner-only permissions).
pub async fn up_demo(root_kubeconfig: &Path, name: &str, out: &Path) -> anyhow::Result<()> {
    let client = client(root_kubeconfig).await?;
    ensure(&client, "default", name).await?;
    let config = kubeconfig(&client, "default", name).await?;
    write_private(out, &config)
}

/// Writes `contents` to `path` atomically, readable by the owner only.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}
