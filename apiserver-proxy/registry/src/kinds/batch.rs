//! Strategies for `batch`: jobs and cronjobs (`pkg/apis/batch/v1/defaults.go`,
//! `pkg/apis/batch/validation`, `pkg/registry/batch/*/strategy.go`).
//!
//! Owns Job/CronJob rules; pod templates are delegated to `podspec.rs`.
//! Never creates pods or jobs.

use std::sync::Arc;

use serde_json::{Value, json};

use super::podspec::{default_template, validate_template};
use super::printing::{
    AGE, arr, bool_ptr, col, container_cells, format_label_selector, int, name_cell, s,
    seconds_between, since, wide,
};
use super::{child, ensure_obj, labelselector, set, set_default, sort_keys};
use crate::error::FieldError;
use crate::strategy::{Column, Strategy};
use crate::validation::{IS_NEGATIVE, immutable};

/// The strategy for `resource` in `group`, if this module serves it.
pub fn strategy(group: &str, resource: &str) -> Option<Arc<dyn Strategy>> {
    if group != "batch" {
        return None;
    }
    Some(match resource {
        "jobs" => Arc::new(Jobs),
        "cronjobs" => Arc::new(CronJobs),
        _ => return None,
    })
}

fn nonneg(spec: &Value, path: &str, key: &str, errs: &mut Vec<FieldError>) {
    if let Some(v) = spec[key].as_i64().filter(|v| *v < 0) {
        errs.push(FieldError::invalid(format!("{path}.{key}"), v, IS_NEGATIVE));
    }
}

/// The template rules every job template shares (`ValidateJobTemplateSpec`
/// and `validateJobPodTemplate`): restartPolicy OnFailure or Never.
fn validate_job_template(template: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = validate_template(template, path);
    let rp = s(template, &["spec", "restartPolicy"]);
    if rp != "OnFailure" && rp != "Never" {
        errs.push(FieldError::not_supported(
            format!("{path}.spec.restartPolicy"),
            rp,
            &["OnFailure", "Never"],
        ));
    }
    errs
}

// ---------------------------------------------------------------- jobs

/// `pkg/registry/batch/job/strategy.go`.
pub struct Jobs;

const JOB_NAME: [&str; 2] = ["job-name", "batch.kubernetes.io/job-name"];
const CONTROLLER_UID: [&str; 2] = ["controller-uid", "batch.kubernetes.io/controller-uid"];

/// `SetDefaults_Job`.
fn default_job(obj: &mut Value) {
    let template_labels = obj["spec"]["template"]["metadata"]["labels"].clone();
    if let Some(spec) = child(obj, "spec") {
        if spec["completions"].is_null() && spec["parallelism"].is_null() {
            set(spec, "completions", json!(1));
            set(spec, "parallelism", json!(1));
        }
        set_default(spec, "parallelism", json!(1));
        let backoff = if spec["backoffLimitPerIndex"].is_null() {
            6
        } else {
            i64::from(i32::MAX)
        };
        set_default(spec, "backoffLimit", json!(backoff));
        set_default(spec, "completionMode", json!("NonIndexed"));
        set_default(spec, "suspend", json!(false));
        if let Some(rules) = child(spec, "podFailurePolicy").and_then(|p| child(p, "rules"))
            && let Some(rules) = rules.as_array_mut()
        {
            for rule in rules {
                super::each_mut(rule, "onPodConditions", |c| {
                    set_default(c, "status", json!("True"))
                });
            }
        }
        let policy = if spec["podFailurePolicy"].is_null() {
            "TerminatingOrFailed"
        } else {
            "Failed"
        };
        set_default(spec, "podReplacementPolicy", json!(policy));
        if let Some(t) = child(spec, "template") {
            default_template(t);
        }
    }
    if template_labels.is_object()
        && super::is_empty(&obj["metadata"]["labels"])
        && let Some(meta) = ensure_obj(obj, "metadata")
    {
        set(meta, "labels", template_labels);
    }
}

/// `generateSelector`: template labels and selector from the job's uid.
fn generate_selector(obj: &mut Value) {
    let name = s(obj, &["metadata", "name"]).to_string();
    let uid = s(obj, &["metadata", "uid"]).to_string();
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    if let Some(labels) = ensure_obj(spec, "template")
        .and_then(|t| ensure_obj(t, "metadata"))
        .and_then(|m| ensure_obj(m, "labels"))
    {
        for key in JOB_NAME {
            set_default(labels, key, json!(name));
        }
        for key in CONTROLLER_UID {
            set_default(labels, key, json!(uid));
        }
        sort_keys(labels);
    }
    if let Some(ml) = ensure_obj(spec, "selector").and_then(|sel| ensure_obj(sel, "matchLabels")) {
        set_default(ml, CONTROLLER_UID[1], json!(uid));
        sort_keys(ml);
    }
}

fn validate_job(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = &obj["spec"];
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        nonneg(spec, "spec", key, &mut errs);
    }
    let selector = &spec["selector"];
    if selector.is_null() {
        errs.push(FieldError::required("spec.selector", ""));
    } else {
        errs.extend(labelselector::validate(selector, "spec.selector"));
        let labels = &spec["template"]["metadata"]["labels"];
        if !labelselector::matches(selector, labels) {
            errs.push(FieldError::invalid(
                "spec.template.metadata.labels",
                labels.clone(),
                "`selector` does not match template `labels`",
            ));
        }
    }
    if spec["manualSelector"].as_bool() != Some(true) {
        let uid = s(obj, &["metadata", "uid"]);
        if uid.is_empty() {
            errs.push(FieldError::required("metadata.uid", ""));
        }
        let name = s(obj, &["metadata", "name"]);
        let labels = &spec["template"]["metadata"]["labels"];
        for (key, want) in [(CONTROLLER_UID[0], uid), (JOB_NAME[0], name)] {
            let path = format!("spec.template.metadata.labels[{key}]");
            match labels.get(key).and_then(Value::as_str) {
                None => errs.push(FieldError::required(path, format!("must be '{want}'"))),
                Some(v) if v != want => {
                    errs.push(FieldError::invalid(path, v, format!("must be '{want}'")))
                }
                _ => {}
            }
        }
    }
    match s(spec, &["completionMode"]) {
        "NonIndexed" | "" => {}
        "Indexed" => {
            if spec["completions"].is_null() {
                errs.push(FieldError::required(
                    "spec.completions",
                    "when completion mode is Indexed",
                ));
            }
        }
        m => errs.push(FieldError::not_supported(
            "spec.completionMode",
            m,
            &["NonIndexed", "Indexed"],
        )),
    }
    match s(spec, &["podReplacementPolicy"]) {
        "" | "TerminatingOrFailed" | "Failed" => {}
        p => errs.push(FieldError::not_supported(
            "spec.podReplacementPolicy",
            p,
            &["TerminatingOrFailed", "Failed"],
        )),
    }
    errs.extend(validate_job_template(&spec["template"], "spec.template"));
    errs
}

impl Strategy for Jobs {
    fn default(&self, obj: &mut Value) {
        default_job(obj);
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        set(obj, "status", json!({}));
        if obj["spec"]["manualSelector"].as_bool() != Some(true) {
            generate_selector(obj);
            if let Some(spec) = child(obj, "spec") {
                set(spec, "manualSelector", json!(false));
            }
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_job(obj)
    }

    /// `ValidateJobSpecUpdate`: selector, template (scheduling directives
    /// aside while suspended and never started), completionMode and friends
    /// are immutable.
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = validate_job(new);
        let (ns, os) = (&new["spec"], &old["spec"]);
        for key in [
            "selector",
            "completionMode",
            "podFailurePolicy",
            "backoffLimitPerIndex",
            "managedBy",
            "successPolicy",
        ] {
            errs.extend(immutable(&ns[key], &os[key], &format!("spec.{key}")));
        }
        if s(ns, &["completionMode"]) != "Indexed" {
            errs.extend(immutable(
                &ns["completions"],
                &os["completions"],
                "spec.completions",
            ));
        }
        let mut old_template = os["template"].clone();
        let mutable_scheduling =
            os["suspend"].as_bool() == Some(true) && old["status"]["startTime"].is_null();
        if mutable_scheduling {
            for (obj_key, keys) in [
                (
                    "spec",
                    &["nodeSelector", "tolerations", "affinity", "schedulingGates"][..],
                ),
                ("metadata", &["annotations", "labels"][..]),
            ] {
                for key in keys {
                    let value = ns["template"][obj_key][*key].clone();
                    if let Some(part) = ensure_obj(&mut old_template, obj_key) {
                        if value.is_null() {
                            part.as_object_mut().map(|m| m.remove(*key));
                        } else {
                            set(part, key, value);
                        }
                    }
                }
            }
        }
        errs.extend(immutable(&ns["template"], &old_template, "spec.template"));
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column {
                description: "Status of the job.",
                ..col("Status", "string")
            },
            Column {
                description: "The completion status of the job.",
                ..col("Completions", "string")
            },
            Column {
                description: "Time required to complete the job.",
                ..col("Duration", "string")
            },
            AGE,
            wide("Containers", "string"),
            wide("Images", "string"),
            wide("Selector", "string"),
        ]
    }

    /// `printJob`.
    fn row(&self, obj: &Value) -> Vec<Value> {
        let spec = &obj["spec"];
        let succeeded = int(obj, &["status", "succeeded"]);
        let completions = match spec["completions"].as_i64() {
            Some(c) => format!("{succeeded}/{c}"),
            None => match int(spec, &["parallelism"]) {
                p if p > 1 => format!("{succeeded}/1 of {p}"),
                _ => format!("{succeeded}/1"),
            },
        };
        let start = s(obj, &["status", "startTime"]);
        let end = s(obj, &["status", "completionTime"]);
        let duration = match (start.is_empty(), end.is_empty()) {
            (true, _) => String::new(),
            (false, true) => since(&json!(start)),
            (false, false) => seconds_between(start, end)
                .map(super::printing::human_duration)
                .unwrap_or_default(),
        };
        let has = |t: &str| {
            arr(obj, &["status", "conditions"])
                .iter()
                .any(|c| s(c, &["type"]) == t && s(c, &["status"]) == "True")
        };
        let status = if has("Complete") {
            "Complete"
        } else if has("Failed") {
            "Failed"
        } else if !obj["metadata"]["deletionTimestamp"].is_null() {
            "Terminating"
        } else if has("Suspended") {
            "Suspended"
        } else if has("FailureTarget") {
            "FailureTarget"
        } else if has("SuccessCriteriaMet") {
            "SuccessCriteriaMet"
        } else {
            "Running"
        };
        let (names, images) = container_cells(&spec["template"]["spec"]);
        vec![
            name_cell(obj),
            json!(status),
            json!(completions),
            json!(duration),
            super::printing::age_cell(obj),
            names,
            images,
            json!(format_label_selector(&spec["selector"])),
        ]
    }

    fn field_label(&self, obj: &Value, field: &str) -> Option<String> {
        (field == "status.successful").then(|| int(obj, &["status", "succeeded"]).to_string())
    }
}

// ---------------------------------------------------------------- cronjobs

/// `pkg/registry/batch/cronjob/strategy.go`.
pub struct CronJobs;

const CRON_DESCRIPTORS: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// `validateTimeZone`: an explicit IANA zone (`time.LoadLocation`'s error
/// wording for one it does not know).
fn validate_time_zone(tz: &Value) -> Vec<FieldError> {
    let field = "spec.timeZone";
    let Some(name) = tz.as_str() else {
        return vec![FieldError::invalid(field, tz.clone(), "must be a string")];
    };
    if name.is_empty() {
        return vec![FieldError::invalid(
            field,
            name,
            "timeZone must be nil or non-empty string",
        )];
    }
    let unknown = format!("unknown time zone {name}");
    for part in name.split('/') {
        let valid_chars = !part.is_empty()
            && part.len() <= 14
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'));
        if part == "." || part == ".." || part.starts_with('-') || !valid_chars {
            return vec![FieldError::invalid(field, name, unknown)];
        }
    }
    if name.eq_ignore_ascii_case("Local") {
        return vec![FieldError::invalid(
            field,
            name,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        )];
    }
    if name.parse::<chrono_tz::Tz>().is_err() {
        return vec![FieldError::invalid(field, name, unknown)];
    }
    Vec::new()
}

/// The subset of `cron.ParseStandard` errors we can state exactly.
fn validate_schedule(schedule: &str) -> Option<String> {
    if schedule.contains("TZ") {
        return Some("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into());
    }
    if schedule.starts_with('@') {
        if CRON_DESCRIPTORS.contains(&schedule) || schedule.starts_with("@every ") {
            return None;
        }
        return Some(format!("unrecognized descriptor: {schedule}"));
    }
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != 5 {
        return Some(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    None
}

impl Strategy for CronJobs {
    /// `SetDefaults_CronJob` (job template defaults are only the pod spec's).
    fn default(&self, obj: &mut Value) {
        if let Some(spec) = child(obj, "spec") {
            set_default(spec, "concurrencyPolicy", json!("Allow"));
            set_default(spec, "suspend", json!(false));
            set_default(spec, "successfulJobsHistoryLimit", json!(3));
            set_default(spec, "failedJobsHistoryLimit", json!(1));
            // ObjectMeta is a non-pointer struct in Go: it is emitted even when empty.
            if let Some(jt) = child(spec, "jobTemplate") {
                set_default(jt, "metadata", json!({}));
                if let Some(t) = child(jt, "spec").and_then(|j| child(j, "template")) {
                    set_default(t, "metadata", json!({}));
                }
            }
            if let Some(t) = child(spec, "jobTemplate")
                .and_then(|j| child(j, "spec"))
                .and_then(|j| child(j, "template"))
            {
                default_template(t);
            }
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        set(obj, "status", json!({}));
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let name = s(obj, &["metadata", "name"]);
        if name.len() > 52 {
            errs.push(FieldError::invalid(
                "metadata.name",
                name,
                "must be no more than 52 characters",
            ));
        }
        let spec = &obj["spec"];
        match s(spec, &["schedule"]) {
            "" => errs.push(FieldError::required("spec.schedule", "")),
            sched => {
                if let Some(msg) = validate_schedule(sched) {
                    errs.push(FieldError::invalid("spec.schedule", sched, msg));
                }
            }
        }
        if let Some(tz) = spec.get("timeZone").filter(|v| !v.is_null()) {
            errs.extend(validate_time_zone(tz));
        }
        match s(spec, &["concurrencyPolicy"]) {
            "Allow" | "Forbid" | "Replace" => {}
            "" => errs.push(FieldError::required("spec.concurrencyPolicy", "")),
            p => errs.push(FieldError::not_supported(
                "spec.concurrencyPolicy",
                p,
                &["Allow", "Forbid", "Replace"],
            )),
        }
        for key in [
            "startingDeadlineSeconds",
            "successfulJobsHistoryLimit",
            "failedJobsHistoryLimit",
        ] {
            nonneg(spec, "spec", key, &mut errs);
        }
        let job_spec = &spec["jobTemplate"]["spec"];
        for key in [
            "parallelism",
            "completions",
            "activeDeadlineSeconds",
            "backoffLimit",
        ] {
            nonneg(job_spec, "spec.jobTemplate.spec", key, &mut errs);
        }
        if let Some(sel) = job_spec.get("selector").filter(|v| !v.is_null()) {
            errs.extend(labelselector::validate(
                sel,
                "spec.jobTemplate.spec.selector",
            ));
        }
        errs.extend(validate_job_template(
            &job_spec["template"],
            "spec.jobTemplate.spec.template",
        ));
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            col("Schedule", "string"),
            col("Timezone", "string"),
            col("Suspend", "boolean"),
            col("Active", "integer"),
            col("Last Schedule", "string"),
            AGE,
            wide("Containers", "string"),
            wide("Images", "string"),
            wide("Selector", "string"),
        ]
    }

    /// `printCronJob`.
    fn row(&self, obj: &Value) -> Vec<Value> {
        let spec = &obj["spec"];
        let last = &obj["status"]["lastScheduleTime"];
        let last = if last.is_null() {
            "<none>".to_string()
        } else {
            since(last)
        };
        let tz = spec["timeZone"].as_str().unwrap_or("<none>");
        let (names, images) = container_cells(&spec["jobTemplate"]["spec"]["template"]["spec"]);
        vec![
            name_cell(obj),
            json!(s(spec, &["schedule"])),
            json!(tz),
            bool_ptr(&spec["suspend"]),
            json!(arr(obj, &["status", "active"]).len()),
            json!(last),
            super::printing::age_cell(obj),
            names,
            images,
            json!(format_label_selector(
                &spec["jobTemplate"]["spec"]["selector"]
            )),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Value {
        json!({"metadata": {"name": "pi", "uid": "u-1"},
            "spec": {"template": {"spec": {"containers": [{"name": "pi", "image": "perl:5.34"}], "restartPolicy": "Never"}}}})
    }

    #[test]
    fn minimal_job_matches_upstream() {
        let mut j = job();
        Jobs.default(&mut j);
        Jobs.prepare_for_create(&mut j);
        let spec = &j["spec"];
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(spec["manualSelector"], false);
        assert_eq!(
            spec["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        assert_eq!(
            spec["template"]["metadata"]["labels"],
            json!({"batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "pi",
                "controller-uid": "u-1", "job-name": "pi"})
        );
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
        assert_eq!(j["status"], json!({}));
        assert!(Jobs.validate(&j).is_empty(), "{:?}", Jobs.validate(&j));
    }

    #[test]
    fn job_restart_policy_always_is_rejected() {
        let mut j = job();
        j["spec"]["template"]["spec"]
            .as_object_mut()
            .unwrap()
            .remove("restartPolicy");
        Jobs.default(&mut j);
        Jobs.prepare_for_create(&mut j);
        assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "Always");
        let errs: Vec<String> = Jobs.validate(&j).iter().map(|e| e.to_string()).collect();
        assert_eq!(
            errs,
            vec![
                "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
            ]
        );
    }

    #[test]
    fn job_template_is_immutable() {
        let mut j = job();
        Jobs.default(&mut j);
        Jobs.prepare_for_create(&mut j);
        let mut new = j.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:5.36");
        let errs = Jobs.validate_update(&new, &j);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.template");
        assert_eq!(errs[0].detail, "field is immutable");
    }

    #[test]
    fn job_rows() {
        let mut j = job();
        Jobs.default(&mut j);
        j["status"] = json!({"succeeded": 1, "startTime": "2024-01-01T00:00:00Z", "completionTime": "2024-01-01T00:00:05Z",
            "conditions": [{"type": "Complete", "status": "True"}]});
        let row = Jobs.row(&j);
        assert_eq!(row.len(), Jobs.columns().len());
        assert_eq!(&row[1..4], &[json!("Complete"), json!("1/1"), json!("5s")]);
        assert_eq!(
            Jobs.field_label(&j, "status.successful").as_deref(),
            Some("1")
        );
    }

    #[test]
    fn cronjob_defaults_and_validation() {
        let mut cj = json!({"metadata": {"name": "c"}, "spec": {"schedule": "*/5 * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "b"}], "restartPolicy": "OnFailure"}}}}}});
        CronJobs.default(&mut cj);
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
        assert_eq!(cj["spec"]["suspend"], false);
        assert!(
            cj["spec"]["jobTemplate"]["spec"]
                .get("backoffLimit")
                .is_none()
        );
        assert!(
            CronJobs.validate(&cj).is_empty(),
            "{:?}",
            CronJobs.validate(&cj)
        );
        cj["spec"]["schedule"] = json!("* * *");
        assert_eq!(
            CronJobs.validate(&cj)[0].to_string(),
            "spec.schedule: Invalid value: \"* * *\": expected exactly 5 fields, found 3: [* * *]"
        );
        cj["spec"]["schedule"] = json!("0 9 * * *");
        cj["spec"]["timeZone"] = json!("Europe/Berlin");
        assert!(CronJobs.validate(&cj).is_empty());
        cj["spec"]["timeZone"] = json!("Mars/X");
        let errs: Vec<String> = CronJobs
            .validate(&cj)
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            errs,
            ["spec.timeZone: Invalid value: \"Mars/X\": unknown time zone Mars/X"]
        );
        cj["spec"].as_object_mut().unwrap().remove("timeZone");
        let row = CronJobs.row(&cj);
        assert_eq!(
            &row[2..6],
            &[json!("<none>"), json!("False"), json!(0), json!("<none>")]
        );
    }
}
