//! The spec of a pod's parent copy, built field by field from the virtual
//! pod's spec by an allow-list ([`translate`]): every field that names an
//! object is translated to the copy of that object or refused, every other
//! field is kept only if it is listed here. A field this module does not
//! name is dropped, never copied.
//!
//! The output structs are written as exhaustive struct literals (no
//! `..Default::default()`, no `..input`) for [`PodSpec`], [`Container`],
//! [`EphemeralContainer`], [`Volume`], [`VolumeProjection`],
//! [`EnvVarSource`], [`PersistentVolumeClaimSpec`] and the other structs
//! that can hold a reference: when a k8s-openapi upgrade adds a field to
//! one of them, this module stops compiling until someone decides whether
//! the new field is kept, translated or refused. (Deserializing into the
//! k8s-openapi types already drops fields unknown to that version.) Structs
//! copied whole (security contexts, probes, lifecycle handlers, node
//! affinity, tolerations) hold no object reference today; admission polices
//! what they ask of the node (`hostescape`, pod security).
//!
//! Translated: ConfigMap, Secret and PersistentVolumeClaim names (volumes,
//! projected sources, env, envFrom, imagePullSecrets) to their copies'; the
//! projected service-account token and root CA to the token Secret
//! (`super::token`); downward-API references to the pod itself to the
//! copy's origin annotations; pod (anti-)affinity and topology spread
//! selectors to selectors of the tenant's own copies. Refused (the pod is
//! not copied, a Warning on it says why): in-tree network and cloud volumes
//! (they name storage, Secrets and Endpoints of the parent directly), CSI
//! `nodePublishSecretRef`, ephemeral claim templates with `volumeName`,
//! `dataSource(Ref)` or `selector`, ClusterTrustBundle and PodCertificate
//! projections, DRA `resourceClaims` and container `resources.claims`, a
//! `schedulingGroup`, pod affinity `namespaceSelector`s that select by
//! label. Dropped (the parent decides): nodeName, service account, priority,
//! overhead, eviction responders.
//!
//! This module is pure: it must never depend on a client.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, CSIVolumeSource, ConfigMapEnvSource, ConfigMapKeySelector, ConfigMapProjection,
    ConfigMapVolumeSource, Container, DownwardAPIProjection, DownwardAPIVolumeFile,
    DownwardAPIVolumeSource, EnvFromSource, EnvVar, EnvVarSource, EphemeralContainer,
    EphemeralVolumeSource, KeyToPath, LocalObjectReference, ObjectFieldSelector,
    PersistentVolumeClaimSpec, PersistentVolumeClaimTemplate, PersistentVolumeClaimVolumeSource,
    PodAffinity, PodAffinityTerm, PodAntiAffinity, PodSpec, ProjectedVolumeSource,
    ResourceRequirements, SecretEnvSource, SecretKeySelector, SecretProjection, SecretVolumeSource,
    TopologySpreadConstraint, Volume, VolumeProjection, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde_json::json;

use super::pod::{DOWNWARD_ANNOTATIONS, Endpoint};
use super::refusal::{Refusals, Refused};
use crate::names;

/// The ConfigMap every namespace has with the API's CA: its projected
/// source is served from the token Secret (`ca.crt`) instead.
pub(crate) const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";

/// What the translation of one pod needs to know.
pub(crate) struct Names<'a> {
    /// The VirtualCluster's path.
    pub cluster: &'a str,
    /// The VirtualCluster's uid (owner label of every copy).
    pub vc_uid: &'a str,
    /// The pod's virtual namespace.
    pub namespace: &'a str,
    /// The pod's virtual name.
    pub pod: &'a str,
    /// The Secret with the tokens and CA the pod runs with.
    pub token_secret: &'a str,
    /// Where the pod reaches the API.
    pub endpoint: &'a Endpoint,
}

impl Names<'_> {
    /// The copy's name of object `name` of the pod's namespace (empty stays
    /// empty: upstream validation refuses it where it matters).
    fn copy(&self, name: &str) -> String {
        if name.is_empty() {
            return String::new();
        }
        names::host_name(self.cluster, self.namespace, name)
    }
}

/// Why an in-tree volume source is refused.
const IN_TREE: &str = "in-tree volume sources are not copied to the parent cluster: they name the parent's storage, Secrets or Endpoints directly (use a PersistentVolumeClaim)";

/// The spec of the parent copy of a pod with virtual spec `v` (see the
/// module docs), or every field refused.
pub(crate) fn translate(v: &PodSpec, n: &Names<'_>) -> Result<PodSpec, Refused> {
    let mut errs = Refusals::default();
    let mut token_index = 0usize;
    let volumes = v.volumes.as_ref().map(|list| {
        list.iter()
            .enumerate()
            .map(|(i, vol)| {
                volume(
                    vol,
                    &format!("spec.volumes[{i}]"),
                    n,
                    &mut token_index,
                    &mut errs,
                )
            })
            .collect()
    });
    let containers = v
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| container(c, &format!("spec.containers[{i}]"), n, &mut errs))
        .collect();
    let init_containers = v.init_containers.as_ref().map(|list| {
        list.iter()
            .enumerate()
            .map(|(i, c)| container(c, &format!("spec.initContainers[{i}]"), n, &mut errs))
            .collect()
    });
    let ephemeral_containers = v.ephemeral_containers.as_ref().map(|list| {
        list.iter()
            .enumerate()
            .map(|(i, c)| {
                ephemeral_container(c, &format!("spec.ephemeralContainers[{i}]"), n, &mut errs)
            })
            .collect()
    });
    if v.resource_claims.as_ref().is_some_and(|l| !l.is_empty()) {
        errs.push(
            "spec.resourceClaims",
            "ResourceClaims and ResourceClaimTemplates are not copied to the parent cluster",
        );
    }
    errs.forbid(
        &v.scheduling_group,
        || "spec.schedulingGroup".into(),
        "PodGroups are not copied to the parent cluster",
    );
    let hostname = v.hostname.clone().or_else(|| {
        (names::is_label_value(n.pod) && !n.pod.contains(['.', '_'])).then(|| n.pod.to_string())
    });
    let spec = PodSpec {
        active_deadline_seconds: v.active_deadline_seconds,
        affinity: v.affinity.as_ref().map(|a| affinity(a, n, &mut errs)),
        // Never a credential of the parent (the token Secret stands in).
        automount_service_account_token: Some(false),
        containers,
        dns_config: v.dns_config.clone(),
        dns_policy: v.dns_policy.clone(),
        enable_service_links: Some(false),
        ephemeral_containers,
        // Responders are the parent's controllers.
        eviction_responders: None,
        host_aliases: v.host_aliases.clone(),
        // Host namespaces and paths: admission (pod security, host escapes)
        // decides what a cluster may ask for.
        host_ipc: v.host_ipc,
        host_network: v.host_network,
        host_pid: v.host_pid,
        host_users: v.host_users,
        hostname,
        hostname_override: v.hostname_override.clone(),
        image_pull_secrets: v.image_pull_secrets.as_ref().map(|l| {
            l.iter()
                .map(|r| LocalObjectReference {
                    name: n.copy(&r.name),
                })
                .collect()
        }),
        init_containers,
        // The parent's scheduler decides.
        node_name: None,
        node_selector: v.node_selector.clone(),
        os: v.os.clone(),
        // The parent's RuntimeClass admission computes it.
        overhead: None,
        // The parent's admission computes priorities.
        preemption_policy: None,
        priority: None,
        priority_class_name: None,
        readiness_gates: v.readiness_gates.clone(),
        resource_claims: None,
        resources: v
            .resources
            .as_ref()
            .map(|r| resources(r, "spec.resources", &mut errs)),
        restart_policy: v.restart_policy.clone(),
        runtime_class_name: v.runtime_class_name.clone(),
        scheduler_name: v.scheduler_name.clone(),
        scheduling_gates: v.scheduling_gates.clone(),
        scheduling_group: None,
        security_context: v.security_context.clone(),
        // The parent's `default`, with no token mounted.
        service_account: None,
        service_account_name: None,
        set_hostname_as_fqdn: v.set_hostname_as_fqdn,
        share_process_namespace: v.share_process_namespace,
        subdomain: v.subdomain.clone(),
        termination_grace_period_seconds: v.termination_grace_period_seconds,
        tolerations: v.tolerations.clone(),
        topology_spread_constraints: v
            .topology_spread_constraints
            .as_ref()
            .map(|l| l.iter().map(|c| spread_constraint(c, n)).collect()),
        volumes,
    };
    errs.finish(spec)
}

/// One volume of the pod.
fn volume(
    v: &Volume,
    path: &str,
    n: &Names<'_>,
    token_index: &mut usize,
    errs: &mut Refusals,
) -> Volume {
    let mut refuse = |source: &str, set: bool| {
        if set {
            errs.push(format!("{path}.{source}"), IN_TREE);
        }
    };
    refuse("awsElasticBlockStore", v.aws_elastic_block_store.is_some());
    refuse("azureDisk", v.azure_disk.is_some());
    refuse("azureFile", v.azure_file.is_some());
    refuse("cephfs", v.cephfs.is_some());
    refuse("cinder", v.cinder.is_some());
    refuse("fc", v.fc.is_some());
    refuse("flexVolume", v.flex_volume.is_some());
    refuse("flocker", v.flocker.is_some());
    refuse("gcePersistentDisk", v.gce_persistent_disk.is_some());
    refuse("gitRepo", v.git_repo.is_some());
    refuse("glusterfs", v.glusterfs.is_some());
    refuse("iscsi", v.iscsi.is_some());
    refuse("nfs", v.nfs.is_some());
    refuse("photonPersistentDisk", v.photon_persistent_disk.is_some());
    refuse("portworxVolume", v.portworx_volume.is_some());
    refuse("quobyte", v.quobyte.is_some());
    refuse("rbd", v.rbd.is_some());
    refuse("scaleIO", v.scale_io.is_some());
    refuse("storageos", v.storageos.is_some());
    refuse("vsphereVolume", v.vsphere_volume.is_some());
    Volume {
        aws_elastic_block_store: None,
        azure_disk: None,
        azure_file: None,
        cephfs: None,
        cinder: None,
        config_map: v.config_map.as_ref().map(|c| ConfigMapVolumeSource {
            default_mode: c.default_mode,
            default_user: c.default_user,
            items: c.items.clone(),
            name: n.copy(&c.name),
            optional: c.optional,
        }),
        csi: v.csi.as_ref().map(|c| {
            errs.forbid(
                &c.node_publish_secret_ref,
                || format!("{path}.csi.nodePublishSecretRef"),
                "a Secret named here is read by the CSI driver in the parent cluster's namespace, not the virtual one",
            );
            CSIVolumeSource {
                driver: c.driver.clone(),
                fs_type: c.fs_type.clone(),
                node_publish_secret_ref: None,
                read_only: c.read_only,
                volume_attributes: c.volume_attributes.clone(),
            }
        }),
        downward_api: v.downward_api.as_ref().map(|d| DownwardAPIVolumeSource {
            default_mode: d.default_mode,
            default_user: d.default_user,
            items: downward_items(&d.items),
        }),
        empty_dir: v.empty_dir.clone(),
        ephemeral: v.ephemeral.as_ref().map(|e| EphemeralVolumeSource {
            volume_claim_template: e
                .volume_claim_template
                .as_ref()
                .map(|t| claim_template(t, &format!("{path}.ephemeral.volumeClaimTemplate"), errs)),
        }),
        fc: None,
        flex_volume: None,
        flocker: None,
        gce_persistent_disk: None,
        git_repo: None,
        glusterfs: None,
        // Admission decides whether a cluster may mount host paths.
        host_path: v.host_path.clone(),
        image: v.image.clone(),
        iscsi: None,
        name: v.name.clone(),
        nfs: None,
        persistent_volume_claim: v.persistent_volume_claim.as_ref().map(|c| {
            PersistentVolumeClaimVolumeSource {
                claim_name: n.copy(&c.claim_name),
                read_only: c.read_only,
            }
        }),
        photon_persistent_disk: None,
        portworx_volume: None,
        projected: v.projected.as_ref().map(|p| ProjectedVolumeSource {
            default_mode: p.default_mode,
            default_user: p.default_user,
            sources: p.sources.as_ref().map(|list| {
                list.iter()
                    .enumerate()
                    .map(|(i, s)| {
                        projection(s, &format!("{path}.projected.sources[{i}]"), n, token_index, errs)
                    })
                    .collect()
            }),
        }),
        quobyte: None,
        rbd: None,
        scale_io: None,
        secret: v.secret.as_ref().map(|s| SecretVolumeSource {
            default_mode: s.default_mode,
            default_user: s.default_user,
            items: s.items.clone(),
            optional: s.optional,
            secret_name: s.secret_name.as_deref().map(|s| n.copy(s)),
        }),
        storageos: None,
        vsphere_volume: None,
    }
}

/// One source of a projected volume.
fn projection(
    s: &VolumeProjection,
    path: &str,
    n: &Names<'_>,
    token_index: &mut usize,
    errs: &mut Refusals,
) -> VolumeProjection {
    errs.forbid(
        &s.cluster_trust_bundle,
        || format!("{path}.clusterTrustBundle"),
        "ClusterTrustBundles are the parent cluster's",
    );
    errs.forbid(
        &s.pod_certificate,
        || format!("{path}.podCertificate"),
        "pod certificates would be issued by the parent cluster's signers",
    );
    let token_secret = |items: Option<Vec<KeyToPath>>, optional: Option<bool>| SecretProjection {
        items,
        name: n.token_secret.to_string(),
        optional,
    };
    let mut secret = s.secret.as_ref().map(|s| SecretProjection {
        items: s.items.clone(),
        name: n.copy(&s.name),
        optional: s.optional,
    });
    let mut config_map = s.config_map.as_ref().map(|c| ConfigMapProjection {
        items: c.items.clone(),
        name: n.copy(&c.name),
        optional: c.optional,
    });
    if let Some(sat) = &s.service_account_token {
        // A token the virtual cluster issued, from the token Secret.
        let key = super::token::key(*token_index);
        *token_index += 1;
        secret = Some(token_secret(
            Some(vec![KeyToPath {
                key,
                mode: None,
                path: sat.path.clone(),
                user: None,
            }]),
            None,
        ));
        config_map = None;
    } else if let Some(c) = s
        .config_map
        .as_ref()
        .filter(|c| c.name == ROOT_CA_CONFIGMAP)
    {
        // The virtual cluster's CA, from the token Secret.
        secret = Some(token_secret(c.items.clone(), c.optional));
        config_map = None;
    }
    VolumeProjection {
        cluster_trust_bundle: None,
        config_map,
        downward_api: s.downward_api.as_ref().map(|d| DownwardAPIProjection {
            items: downward_items(&d.items),
        }),
        pod_certificate: None,
        secret,
        service_account_token: None,
    }
}

/// Downward-API files, with references to the pod's own fields translated.
fn downward_items(
    items: &Option<Vec<DownwardAPIVolumeFile>>,
) -> Option<Vec<DownwardAPIVolumeFile>> {
    items.as_ref().map(|l| {
        l.iter()
            .map(|f| DownwardAPIVolumeFile {
                field_ref: f.field_ref.as_ref().map(field_ref),
                mode: f.mode,
                path: f.path.clone(),
                resource_field_ref: f.resource_field_ref.clone(),
                user: f.user,
            })
            .collect()
    })
}

/// A downward-API field of the pod itself, read from the copy's origin
/// annotations (or translated labels) so it shows the virtual value.
pub(crate) fn field_ref(r: &ObjectFieldSelector) -> ObjectFieldSelector {
    let path = &r.field_path;
    let new = match DOWNWARD_ANNOTATIONS
        .iter()
        .find(|(p, _)| *p == path.as_str())
    {
        Some((_, key)) => format!("metadata.annotations['{key}']"),
        None => match path
            .strip_prefix("metadata.labels['")
            .and_then(|k| k.strip_suffix("']"))
        {
            Some(k) => format!("metadata.labels['{}']", names::host_label_key(k)),
            None => path.clone(),
        },
    };
    ObjectFieldSelector {
        api_version: r.api_version.clone(),
        field_path: new,
    }
}

/// An ephemeral volume's claim template: the claim is created by the
/// parent, next to the pod, from this.
fn claim_template(
    t: &PersistentVolumeClaimTemplate,
    path: &str,
    errs: &mut Refusals,
) -> PersistentVolumeClaimTemplate {
    errs.forbid(
        &t.spec.volume_name,
        || format!("{path}.spec.volumeName"),
        "PersistentVolumes are the parent cluster's: a claim may not name one",
    );
    PersistentVolumeClaimTemplate {
        // Labels only (annotations may steer the parent's provisioners).
        metadata: t.metadata.as_ref().map(|m| ObjectMeta {
            labels: m.labels.clone(),
            // Everything else of the template's metadata is dropped.
            ..ObjectMeta::default()
        }),
        spec: claim_spec(&t.spec, &format!("{path}.spec"), errs),
    }
}

/// The spec of a claim's parent copy (a PersistentVolumeClaim's or an
/// ephemeral volume's): access modes, requested resources, storage class
/// and volume mode. A label selector of PersistentVolumes, data sources and
/// a VolumeAttributesClass name objects of the parent (or objects the
/// syncer does not copy) and are refused; `volumeName` is left to the
/// caller (the binding mirror writes it on a virtual claim).
pub(crate) fn claim_spec(
    s: &PersistentVolumeClaimSpec,
    path: &str,
    errs: &mut Refusals,
) -> PersistentVolumeClaimSpec {
    errs.forbid(
        &s.selector,
        || format!("{path}.selector"),
        "PersistentVolumes are the parent cluster's: a claim may not select them by label",
    );
    errs.forbid(
        &s.data_source,
        || format!("{path}.dataSource"),
        "data sources are not copied to the parent cluster",
    );
    errs.forbid(
        &s.data_source_ref,
        || format!("{path}.dataSourceRef"),
        "data sources are not copied to the parent cluster",
    );
    errs.forbid(
        &s.volume_attributes_class_name,
        || format!("{path}.volumeAttributesClassName"),
        "VolumeAttributesClasses are not mirrored from the parent cluster",
    );
    PersistentVolumeClaimSpec {
        access_modes: s.access_modes.clone(),
        data_source: None,
        data_source_ref: None,
        resources: s.resources.clone(),
        selector: None,
        storage_class_name: s.storage_class_name.clone(),
        volume_attributes_class_name: None,
        volume_mode: s.volume_mode.clone(),
        volume_name: None,
    }
}

/// Compute resources; DRA claims are refused (they name pod resource
/// claims, which are not copied).
fn resources(r: &ResourceRequirements, path: &str, errs: &mut Refusals) -> ResourceRequirements {
    if r.claims.as_ref().is_some_and(|c| !c.is_empty()) {
        errs.push(
            format!("{path}.claims"),
            "ResourceClaims are not copied to the parent cluster",
        );
    }
    ResourceRequirements {
        claims: None,
        limits: r.limits.clone(),
        requests: r.requests.clone(),
    }
}

/// Environment variables with their references translated, and the API's
/// address (nestkube's) in place of any the pod set.
fn env(list: &Option<Vec<EnvVar>>, n: &Names<'_>) -> Option<Vec<EnvVar>> {
    let mut out: Vec<EnvVar> = list
        .iter()
        .flatten()
        .filter(|e| {
            !matches!(
                e.name.as_str(),
                "KUBERNETES_SERVICE_HOST" | "KUBERNETES_SERVICE_PORT"
            )
        })
        .map(|e| EnvVar {
            name: e.name.clone(),
            value: e.value.clone(),
            value_from: e.value_from.as_ref().map(|s| EnvVarSource {
                config_map_key_ref: s.config_map_key_ref.as_ref().map(|r| ConfigMapKeySelector {
                    key: r.key.clone(),
                    name: n.copy(&r.name),
                    optional: r.optional,
                }),
                field_ref: s.field_ref.as_ref().map(field_ref),
                // A file of one of the pod's own volumes.
                file_key_ref: s.file_key_ref.clone(),
                resource_field_ref: s.resource_field_ref.clone(),
                secret_key_ref: s.secret_key_ref.as_ref().map(|r| SecretKeySelector {
                    key: r.key.clone(),
                    name: n.copy(&r.name),
                    optional: r.optional,
                }),
            }),
        })
        .collect();
    for (name, value) in [
        ("KUBERNETES_SERVICE_HOST", &n.endpoint.host),
        ("KUBERNETES_SERVICE_PORT", &n.endpoint.port),
    ] {
        out.push(EnvVar {
            name: name.into(),
            value: Some(value.clone()),
            value_from: None,
        });
    }
    Some(out)
}

fn env_from(list: &Option<Vec<EnvFromSource>>, n: &Names<'_>) -> Option<Vec<EnvFromSource>> {
    list.as_ref().map(|l| {
        l.iter()
            .map(|e| EnvFromSource {
                config_map_ref: e.config_map_ref.as_ref().map(|r| ConfigMapEnvSource {
                    name: n.copy(&r.name),
                    optional: r.optional,
                }),
                prefix: e.prefix.clone(),
                secret_ref: e.secret_ref.as_ref().map(|r| SecretEnvSource {
                    name: n.copy(&r.name),
                    optional: r.optional,
                }),
            })
            .collect()
    })
}

fn container(c: &Container, path: &str, n: &Names<'_>, errs: &mut Refusals) -> Container {
    Container {
        args: c.args.clone(),
        command: c.command.clone(),
        env: env(&c.env, n),
        env_from: env_from(&c.env_from, n),
        image: c.image.clone(),
        image_pull_policy: c.image_pull_policy.clone(),
        lifecycle: c.lifecycle.clone(),
        liveness_probe: c.liveness_probe.clone(),
        name: c.name.clone(),
        ports: c.ports.clone(),
        readiness_probe: c.readiness_probe.clone(),
        resize_policy: c.resize_policy.clone(),
        resources: c
            .resources
            .as_ref()
            .map(|r| resources(r, &format!("{path}.resources"), errs)),
        restart_policy: c.restart_policy.clone(),
        restart_policy_rules: c.restart_policy_rules.clone(),
        security_context: c.security_context.clone(),
        startup_probe: c.startup_probe.clone(),
        stdin: c.stdin,
        stdin_once: c.stdin_once,
        termination_message_path: c.termination_message_path.clone(),
        termination_message_policy: c.termination_message_policy.clone(),
        tty: c.tty,
        volume_devices: c.volume_devices.clone(),
        volume_mounts: c.volume_mounts.clone(),
        working_dir: c.working_dir.clone(),
    }
}

fn ephemeral_container(
    c: &EphemeralContainer,
    path: &str,
    n: &Names<'_>,
    errs: &mut Refusals,
) -> EphemeralContainer {
    EphemeralContainer {
        args: c.args.clone(),
        command: c.command.clone(),
        env: env(&c.env, n),
        env_from: env_from(&c.env_from, n),
        image: c.image.clone(),
        image_pull_policy: c.image_pull_policy.clone(),
        lifecycle: c.lifecycle.clone(),
        liveness_probe: c.liveness_probe.clone(),
        name: c.name.clone(),
        ports: c.ports.clone(),
        readiness_probe: c.readiness_probe.clone(),
        resize_policy: c.resize_policy.clone(),
        resources: c
            .resources
            .as_ref()
            .map(|r| resources(r, &format!("{path}.resources"), errs)),
        restart_policy: c.restart_policy.clone(),
        restart_policy_rules: c.restart_policy_rules.clone(),
        security_context: c.security_context.clone(),
        startup_probe: c.startup_probe.clone(),
        stdin: c.stdin,
        stdin_once: c.stdin_once,
        target_container_name: c.target_container_name.clone(),
        termination_message_path: c.termination_message_path.clone(),
        termination_message_policy: c.termination_message_policy.clone(),
        tty: c.tty,
        volume_devices: c.volume_devices.clone(),
        volume_mounts: c.volume_mounts.clone(),
        working_dir: c.working_dir.clone(),
    }
}

/// Affinity: node affinity kept (nodes are the parent's); pod
/// (anti-)affinity terms select the tenant's own copies only.
fn affinity(a: &Affinity, n: &Names<'_>, errs: &mut Refusals) -> Affinity {
    let terms = |list: &Option<Vec<PodAffinityTerm>>, path: &str, errs: &mut Refusals| {
        list.as_ref().map(|l| {
            l.iter()
                .enumerate()
                .map(|(i, t)| affinity_term(t, &format!("{path}[{i}]"), n, errs))
                .collect::<Vec<_>>()
        })
    };
    let weighted =
        |list: &Option<Vec<WeightedPodAffinityTerm>>, path: &str, errs: &mut Refusals| {
            list.as_ref().map(|l| {
                l.iter()
                    .enumerate()
                    .map(|(i, w)| WeightedPodAffinityTerm {
                        pod_affinity_term: affinity_term(
                            &w.pod_affinity_term,
                            &format!("{path}[{i}].podAffinityTerm"),
                            n,
                            errs,
                        ),
                        weight: w.weight,
                    })
                    .collect::<Vec<_>>()
            })
        };
    const REQUIRED: &str = "requiredDuringSchedulingIgnoredDuringExecution";
    const PREFERRED: &str = "preferredDuringSchedulingIgnoredDuringExecution";
    Affinity {
        node_affinity: a.node_affinity.clone(),
        pod_affinity: a.pod_affinity.as_ref().map(|p| {
            let path = "spec.affinity.podAffinity";
            PodAffinity {
                preferred_during_scheduling_ignored_during_execution: weighted(
                    &p.preferred_during_scheduling_ignored_during_execution,
                    &format!("{path}.{PREFERRED}"),
                    &mut *errs,
                ),
                required_during_scheduling_ignored_during_execution: terms(
                    &p.required_during_scheduling_ignored_during_execution,
                    &format!("{path}.{REQUIRED}"),
                    &mut *errs,
                ),
            }
        }),
        pod_anti_affinity: a.pod_anti_affinity.as_ref().map(|p| {
            let path = "spec.affinity.podAntiAffinity";
            PodAntiAffinity {
                preferred_during_scheduling_ignored_during_execution: weighted(
                    &p.preferred_during_scheduling_ignored_during_execution,
                    &format!("{path}.{PREFERRED}"),
                    &mut *errs,
                ),
                required_during_scheduling_ignored_during_execution: terms(
                    &p.required_during_scheduling_ignored_during_execution,
                    &format!("{path}.{REQUIRED}"),
                    &mut *errs,
                ),
            }
        }),
    }
}

/// A pod affinity term: its pods are the tenant's copies in the namespaces
/// it names (every copy is in the one host namespace, so the namespaces
/// become a namespace-label requirement). A namespace selector that selects
/// by label is refused (it would need the virtual namespaces' labels at
/// every scheduling decision).
fn affinity_term(
    t: &PodAffinityTerm,
    path: &str,
    n: &Names<'_>,
    errs: &mut Refusals,
) -> PodAffinityTerm {
    let all_namespaces = t.namespace_selector.as_ref().is_some_and(|s| {
        s.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
            && s.match_expressions.as_ref().is_none_or(Vec::is_empty)
    });
    if t.namespace_selector.is_some() && !all_namespaces {
        errs.push(
            format!("{path}.namespaceSelector"),
            "only an empty namespaceSelector (every namespace) or a namespaces list is supported",
        );
    }
    let listed: Vec<&String> = t.namespaces.iter().flatten().collect();
    let label_selector = t.label_selector.as_ref().map(|sel| {
        if all_namespaces {
            selector(sel, n.vc_uid, None)
        } else if listed.is_empty() {
            selector(sel, n.vc_uid, Some(n.namespace))
        } else {
            let mut out = selector(sel, n.vc_uid, None);
            let values: Vec<String> = listed.iter().map(|ns| names::label_value(ns)).collect();
            out.match_expressions.get_or_insert_with(Vec::new).push(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                    key: names::NAMESPACE_LABEL.into(),
                    operator: "In".into(),
                    values: Some(values),
                },
            );
            out
        }
    });
    PodAffinityTerm {
        label_selector,
        match_label_keys: host_keys(&t.match_label_keys),
        mismatch_label_keys: host_keys(&t.mismatch_label_keys),
        // The copies are all in the pod copy's own namespace.
        namespace_selector: None,
        namespaces: None,
        topology_key: t.topology_key.clone(),
    }
}

/// A topology spread constraint: it counts the tenant's copies of the same
/// virtual namespace.
fn spread_constraint(c: &TopologySpreadConstraint, n: &Names<'_>) -> TopologySpreadConstraint {
    TopologySpreadConstraint {
        label_selector: c
            .label_selector
            .as_ref()
            .map(|s| selector(s, n.vc_uid, Some(n.namespace))),
        match_label_keys: host_keys(&c.match_label_keys),
        max_skew: c.max_skew,
        min_domains: c.min_domains,
        node_affinity_policy: c.node_affinity_policy.clone(),
        node_taints_policy: c.node_taints_policy.clone(),
        topology_key: c.topology_key.clone(),
        when_unsatisfiable: c.when_unsatisfiable.clone(),
    }
}

/// Pod label keys as the copies carry them.
fn host_keys(keys: &Option<Vec<String>>) -> Option<Vec<String>> {
    keys.as_ref()
        .map(|l| l.iter().map(|k| names::host_label_key(k)).collect())
}

/// A virtual pod selector as a selector of the copies of VirtualCluster
/// `uid` (and of virtual namespace `ns`).
fn selector(sel: &LabelSelector, uid: &str, ns: Option<&str>) -> LabelSelector {
    let v = serde_json::to_value(sel).unwrap_or_else(|_| json!({}));
    serde_json::from_value(super::network_policy::pod_selector(&v, uid, ns)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn names_for<'a>(endpoint: &'a Endpoint) -> Names<'a> {
        Names {
            cluster: "team-a",
            vc_uid: "u",
            namespace: "default",
            pod: "web",
            token_secret: "web-x-default-x-team-a.sa-token",
            endpoint,
        }
    }

    fn run(spec: Value) -> Result<Value, Refused> {
        let endpoint = Endpoint::parse("10.0.0.1:6443");
        let spec: PodSpec = serde_json::from_value(spec).unwrap();
        translate(&spec, &names_for(&endpoint)).map(|s| serde_json::to_value(s).unwrap())
    }

    fn refused_fields(spec: Value) -> Vec<String> {
        match run(spec) {
            Ok(s) => panic!("not refused: {s}"),
            Err(Refused(list)) => list.into_iter().map(|r| r.field).collect(),
        }
    }

    fn with_volume(volume: Value) -> Value {
        json!({"containers": [{"name": "c", "image": "i"}], "volumes": [volume]})
    }

    #[test]
    fn references_are_renamed() {
        let out = run(json!({
            "imagePullSecrets": [{"name": "pull"}],
            "serviceAccountName": "builder",
            "nodeName": "n1", "priority": 7, "priorityClassName": "high",
            "overhead": {"cpu": "1"},
            "containers": [{"name": "c", "image": "i",
                "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                    {"name": "KUBERNETES_SERVICE_HOST", "value": "evil"},
                ],
                "envFrom": [{"configMapRef": {"name": "cm"}}, {"secretRef": {"name": "s"}, "prefix": "P_"}]}],
            "volumes": [
                {"name": "a", "configMap": {"name": "cm"}},
                {"name": "b", "secret": {"secretName": "s"}},
                {"name": "c", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "d", "projected": {"sources": [{"secret": {"name": "s"}}, {"configMap": {"name": "cm"}}]}},
            ],
        }))
        .unwrap();
        let tr = |n: &str| names::host_name("team-a", "default", n);
        assert_eq!(out["imagePullSecrets"], json!([{"name": tr("pull")}]));
        for f in [
            "serviceAccountName",
            "nodeName",
            "priority",
            "priorityClassName",
            "overhead",
        ] {
            assert!(out[f].is_null(), "{f}: {out}");
        }
        assert_eq!(out["automountServiceAccountToken"], false);
        let c = &out["containers"][0];
        assert_eq!(
            c["env"][0]["valueFrom"]["configMapKeyRef"]["name"],
            tr("cm")
        );
        assert_eq!(c["env"][1]["valueFrom"]["secretKeyRef"]["name"], tr("s"));
        assert_eq!(
            c["env"][2],
            json!({"name": "KUBERNETES_SERVICE_HOST", "value": "10.0.0.1"})
        );
        assert_eq!(
            c["envFrom"][1],
            json!({"secretRef": {"name": tr("s")}, "prefix": "P_"})
        );
        let v = &out["volumes"];
        assert_eq!(v[0]["configMap"]["name"], tr("cm"));
        assert_eq!(v[1]["secret"]["secretName"], tr("s"));
        assert_eq!(v[2]["persistentVolumeClaim"]["claimName"], tr("data"));
        assert_eq!(v[3]["projected"]["sources"][0]["secret"]["name"], tr("s"));
        assert_eq!(
            v[3]["projected"]["sources"][1]["configMap"]["name"],
            tr("cm")
        );
    }

    #[test]
    fn object_references_that_cannot_be_translated_are_refused() {
        let template = |extra: Value| {
            let mut spec = json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}});
            spec.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            with_volume(json!({"name": "e", "ephemeral": {"volumeClaimTemplate": {"spec": spec}}}))
        };
        let path = "spec.volumes[0].ephemeral.volumeClaimTemplate.spec";
        for (extra, field) in [
            (json!({"volumeName": "pv-of-another-tenant"}), "volumeName"),
            (
                json!({"dataSource": {"kind": "PersistentVolumeClaim", "name": "x"}}),
                "dataSource",
            ),
            (
                json!({"dataSourceRef": {"kind": "PersistentVolumeClaim", "name": "x"}}),
                "dataSourceRef",
            ),
            (
                json!({"selector": {"matchLabels": {"owner": "b"}}}),
                "selector",
            ),
        ] {
            assert_eq!(
                refused_fields(template(extra)),
                vec![format!("{path}.{field}")]
            );
        }
        assert_eq!(
            refused_fields(with_volume(json!({"name": "x", "csi": {"driver": "d",
                "nodePublishSecretRef": {"name": "other-tenant-creds"}}}))),
            vec!["spec.volumes[0].csi.nodePublishSecretRef"]
        );
        for (source, body) in [
            (
                "rbd",
                json!({"monitors": ["m"], "image": "i", "secretRef": {"name": "s"}}),
            ),
            (
                "cephfs",
                json!({"monitors": ["m"], "secretRef": {"name": "s"}}),
            ),
            (
                "iscsi",
                json!({"targetPortal": "t", "iqn": "q", "lun": 0, "secretRef": {"name": "s"}}),
            ),
            (
                "flexVolume",
                json!({"driver": "d", "secretRef": {"name": "s"}}),
            ),
            ("azureFile", json!({"secretName": "s", "shareName": "x"})),
            (
                "scaleIO",
                json!({"gateway": "g", "system": "s", "secretRef": {"name": "s"}}),
            ),
            ("storageos", json!({"secretRef": {"name": "s"}})),
            (
                "cinder",
                json!({"volumeID": "v", "secretRef": {"name": "s"}}),
            ),
            ("glusterfs", json!({"endpoints": "ep", "path": "p"})),
            ("nfs", json!({"server": "10.0.0.9", "path": "/"})),
            (
                "awsElasticBlockStore",
                json!({"volumeID": "vol-of-another-tenant"}),
            ),
            ("gitRepo", json!({"repository": "r"})),
        ] {
            assert_eq!(
                refused_fields(with_volume(json!({"name": "x", source: body}))),
                vec![format!("spec.volumes[0].{source}")],
                "{source}"
            );
        }
        assert_eq!(
            refused_fields(with_volume(json!({"name": "x", "projected": {"sources": [
                {"clusterTrustBundle": {"name": "b", "path": "p"}},
            ]}}))),
            vec!["spec.volumes[0].projected.sources[0].clusterTrustBundle"]
        );
        assert_eq!(
            refused_fields(json!({
                "containers": [{"name": "c", "image": "i", "resources": {"claims": [{"name": "gpu"}]}}],
                "resourceClaims": [{"name": "gpu", "resourceClaimName": "another-tenants-claim"}],
            })),
            vec!["spec.containers[0].resources.claims", "spec.resourceClaims"]
        );
    }

    #[test]
    fn what_is_safe_is_kept() {
        let out = run(with_volume(json!({"name": "e", "ephemeral": {"volumeClaimTemplate": {
            "metadata": {"labels": {"a": "b"}, "annotations": {"volume.kubernetes.io/selected-node": "n"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast", "volumeMode": "Block",
                "resources": {"requests": {"storage": "1Gi"}}}}}})))
        .unwrap();
        assert_eq!(
            out["volumes"][0]["ephemeral"]["volumeClaimTemplate"],
            json!({"metadata": {"labels": {"a": "b"}},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast", "volumeMode": "Block",
                    "resources": {"requests": {"storage": "1Gi"}}}})
        );
        let out = run(with_volume(
            json!({"name": "x", "csi": {"driver": "inline.csi", "readOnly": true,
            "fsType": "ext4", "volumeAttributes": {"size": "1Gi"}}}),
        ))
        .unwrap();
        assert_eq!(
            out["volumes"][0]["csi"],
            json!({"driver": "inline.csi", "readOnly": true, "fsType": "ext4", "volumeAttributes": {"size": "1Gi"}})
        );
        let out = run(with_volume(
            json!({"name": "x", "image": {"reference": "r", "pullPolicy": "Always"}}),
        ))
        .unwrap();
        assert_eq!(
            out["volumes"][0]["image"],
            json!({"reference": "r", "pullPolicy": "Always"})
        );
    }

    #[test]
    fn unknown_fields_are_dropped() {
        let out = run(json!({
            "containers": [{"name": "c", "image": "i", "futureContainerField": {"name": "x"}}],
            "futurePodField": {"secretRef": {"name": "x"}},
            "volumes": [{"name": "v", "emptyDir": {}, "futureVolume": {"secretRef": {"name": "x"}}}],
        }))
        .unwrap();
        assert!(out.get("futurePodField").is_none(), "{out}");
        assert!(
            out["containers"][0].get("futureContainerField").is_none(),
            "{out}"
        );
        assert_eq!(out["volumes"][0], json!({"name": "v", "emptyDir": {}}));
    }

    #[test]
    fn pod_affinity_selects_the_tenants_own_copies() {
        let out = run(json!({
            "containers": [{"name": "c", "image": "i"}],
            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname",
                    "matchLabelKeys": ["pod-template-hash"]},
                {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone",
                    "namespaces": ["kube-system", "other"]},
            ]}},
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "web"}}}],
        }))
        .unwrap();
        let terms =
            &out["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
        let own = &terms[0]["labelSelector"]["matchLabels"];
        assert_eq!(own["label.tenancy.nestkube.io/app"], "web");
        assert_eq!(own[names::VC_UID_LABEL], "u");
        assert_eq!(own[names::NAMESPACE_LABEL], "default");
        assert_eq!(
            terms[0]["matchLabelKeys"],
            json!(["label.tenancy.nestkube.io/pod-template-hash"])
        );
        assert!(terms[1]["namespaces"].is_null(), "{terms}");
        assert_eq!(
            terms[1]["labelSelector"]["matchExpressions"],
            json!([{"key": names::NAMESPACE_LABEL, "operator": "In", "values": ["kube-system", "other"]}])
        );
        assert_eq!(
            terms[1]["labelSelector"]["matchLabels"][names::VC_UID_LABEL],
            "u"
        );
        let spread = &out["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"];
        assert_eq!(spread[names::VC_UID_LABEL], "u");
        assert_eq!(
            refused_fields(json!({
                "containers": [{"name": "c", "image": "i"}],
                "affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {}, "topologyKey": "z", "namespaceSelector": {"matchLabels": {"team": "x"}}},
                ]}},
            })),
            vec![
                "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].namespaceSelector"
            ]
        );
    }
}
