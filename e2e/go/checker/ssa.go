package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling"
	"github.com/fluxcd/pkg/ssa"
	"github.com/fluxcd/pkg/ssa/utils"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	autoscalingv1ac "k8s.io/client-go/applyconfigurations/autoscaling/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// checkSSA runs server-side apply the way GitOps controllers and typed
// clients do: Flux's SSA engine (what kustomize-controller runs) applies a
// set (a CRD and one of its resources, a ConfigMap, a Deployment), finds
// nothing to do on a re-apply, applies a change, detects and corrects an
// out-of-band edit, and prunes what left the set; then client-go's apply
// configurations conflict between two managers and force.
func checkSSA(ctx context.Context, e *env) error {
	if err := checkFluxSSA(ctx, e); err != nil {
		return fmt.Errorf("flux ssa: %w", err)
	}
	if err := checkApplyConfigurations(ctx, e); err != nil {
		return fmt.Errorf("apply configurations: %w", err)
	}
	return nil
}

// fluxSet is the configuration applied: a CRD, a custom resource of it, a
// ConfigMap and a Deployment, with the given data value and replicas.
func fluxSet(ns, group, value string, replicas int) ([]*unstructured.Unstructured, error) {
	manifests := fmt.Sprintf(`
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.%[2]s
spec:
  group: %[2]s
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              color: {type: string}
---
apiVersion: %[2]s/v1
kind: Widget
metadata: {name: w, namespace: %[1]s}
spec: {size: %[4]d, color: "%[3]s"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: %[1]s}
data: {value: "%[3]s"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: %[1]s}
spec:
  replicas: %[4]d
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: c, image: nginx}
`, ns, group, value, replicas)
	return utils.ReadObjects(strings.NewReader(manifests))
}

// actions is a change set as "Kind/name=action" (sorted by the engine's order).
func actions(cs *ssa.ChangeSet) map[string]string {
	out := map[string]string{}
	for _, en := range cs.Entries {
		kind := en.ObjMetadata.GroupKind.Kind
		out[kind+"/"+en.ObjMetadata.Name] = string(en.Action)
	}
	return out
}

func expectActions(step string, cs *ssa.ChangeSet, want map[string]string) error {
	got := actions(cs)
	for k, v := range want {
		if got[k] != v {
			return fmt.Errorf("%s: %s is %q, want %q (change set: %v)", step, k, got[k], v, got)
		}
	}
	return nil
}

func checkFluxSSA(ctx context.Context, e *env) error {
	c, err := client.New(e.cfg, client.Options{})
	if err != nil {
		return err
	}
	poller := polling.NewStatusPoller(c, c.RESTMapper(), polling.Options{})
	m := ssa.NewResourceManager(c, poller, ssa.Owner{Field: "checker-flux", Group: "checker.example.com"})
	group := e.namespace + ".ssa.checker.example.com"
	crdName := "widgets." + group
	defer func() {
		_ = c.Delete(context.Background(), &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
			"metadata": map[string]any{"name": crdName},
		}})
	}()
	opts := ssa.DefaultApplyOptions()
	opts.WaitInterval = 200 * time.Millisecond
	opts.WaitTimeout = 30 * time.Second
	apply := func(step, value string, replicas int) (*ssa.ChangeSet, []*unstructured.Unstructured, error) {
		objs, err := fluxSet(e.namespace, group, value, replicas)
		if err != nil {
			return nil, nil, err
		}
		m.SetOwnerLabels(objs, "checker", e.namespace)
		cs, err := m.ApplyAllStaged(ctx, objs, opts)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", step, err)
		}
		return cs, objs, nil
	}

	cs, _, err := apply("first apply", "a", 1)
	if err != nil {
		return err
	}
	if err := expectActions("first apply", cs, map[string]string{
		"CustomResourceDefinition/" + crdName: "created", "Widget/w": "created",
		"ConfigMap/settings": "created", "Deployment/web": "created",
	}); err != nil {
		return err
	}
	cs, _, err = apply("re-apply", "a", 1)
	if err != nil {
		return err
	}
	if err := expectActions("re-apply", cs, map[string]string{
		"CustomResourceDefinition/" + crdName: "unchanged", "Widget/w": "unchanged",
		"ConfigMap/settings": "unchanged", "Deployment/web": "unchanged",
	}); err != nil {
		return err
	}
	cs, objs, err := apply("change", "b", 2)
	if err != nil {
		return err
	}
	if err := expectActions("change", cs, map[string]string{
		"CustomResourceDefinition/" + crdName: "unchanged", "Widget/w": "configured",
		"ConfigMap/settings": "configured", "Deployment/web": "configured",
	}); err != nil {
		return err
	}

	// Drift: another writer edits the ConfigMap; a dry-run apply sees it and
	// the next apply restores the configuration.
	cm, err := e.cs.CoreV1().ConfigMaps(e.namespace).Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		return err
	}
	cm.Data["value"] = "edited"
	if _, err := e.cs.CoreV1().ConfigMaps(e.namespace).Update(ctx, cm, metav1.UpdateOptions{FieldManager: "someone"}); err != nil {
		return fmt.Errorf("out-of-band edit: %w", err)
	}
	var desiredCM *unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" {
			desiredCM = o
		}
	}
	entry, live, merged, err := m.Diff(ctx, desiredCM, ssa.DefaultDiffOptions())
	if err != nil {
		return fmt.Errorf("diff: %w", err)
	}
	if entry.Action != ssa.ConfiguredAction || live == nil || merged == nil {
		return fmt.Errorf("drift not detected: %s", entry)
	}
	if v, _, _ := unstructured.NestedString(merged.Object, "data", "value"); v != "b" {
		return fmt.Errorf("dry-run apply gives value %q, want b", v)
	}
	cs, _, err = apply("correct drift", "b", 2)
	if err != nil {
		return err
	}
	if err := expectActions("correct drift", cs, map[string]string{
		"ConfigMap/settings": "configured", "Deployment/web": "unchanged", "Widget/w": "unchanged",
	}); err != nil {
		return err
	}
	cm, err = e.cs.CoreV1().ConfigMaps(e.namespace).Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		return err
	}
	if cm.Data["value"] != "b" {
		return fmt.Errorf("drift not corrected: %v", cm.Data)
	}

	// Prune: the Widget and the ConfigMap leave the set (kustomize-controller
	// deletes what its inventory held and the new set lacks).
	var kept, stale []*unstructured.Unstructured
	for _, o := range objs {
		switch o.GetKind() {
		case "Widget", "ConfigMap":
			stale = append(stale, o)
		default:
			kept = append(kept, o)
		}
	}
	if cs, err = m.ApplyAllStaged(ctx, kept, opts); err != nil {
		return fmt.Errorf("apply without the pruned objects: %w", err)
	}
	del, err := m.DeleteAll(ctx, stale, ssa.DefaultDeleteOptions())
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	if err := expectActions("prune", del, map[string]string{"Widget/w": "deleted", "ConfigMap/settings": "deleted"}); err != nil {
		return err
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		err = c.Get(ctx, client.ObjectKeyFromObject(stale[0]), stale[0].DeepCopy())
		err2 := c.Get(ctx, client.ObjectKeyFromObject(stale[1]), stale[1].DeepCopy())
		if apierrors.IsNotFound(err) && apierrors.IsNotFound(err2) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pruned objects still there: %v, %v", err, err2)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The Deployment stays, with the engine as its applier.
	d, err := e.cs.AppsV1().Deployments(e.namespace).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		return err
	}
	if !hasManager(d.ManagedFields, "checker-flux", metav1.ManagedFieldsOperationApply) {
		return fmt.Errorf("deployment web has no Apply entry of checker-flux: %v", d.ManagedFields)
	}
	return e.cs.AppsV1().Deployments(e.namespace).Delete(ctx, "web", metav1.DeleteOptions{})
}

func hasManager(entries []metav1.ManagedFieldsEntry, manager string, op metav1.ManagedFieldsOperationType) bool {
	for _, en := range entries {
		if en.Manager == manager && en.Operation == op {
			return true
		}
	}
	return false
}

// checkApplyConfigurations applies a Deployment with client-go's typed
// apply configurations as two managers: the second conflicts on the
// replicas the first owns, then takes them with Force; a third applies
// through the scale subresource.
func checkApplyConfigurations(ctx context.Context, e *env) error {
	deployments := e.cs.AppsV1().Deployments(e.namespace)
	labels := map[string]string{"app": "ac"}
	first := appsv1ac.Deployment("ac", e.namespace).WithSpec(appsv1ac.DeploymentSpec().
		WithReplicas(1).
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(labels)).
		WithTemplate(corev1ac.PodTemplateSpec().WithLabels(labels).
			WithSpec(corev1ac.PodSpec().WithContainers(corev1ac.Container().WithName("c").WithImage("nginx")))))
	d, err := deployments.Apply(ctx, first, metav1.ApplyOptions{FieldManager: "one"})
	if err != nil {
		return fmt.Errorf("apply by one: %w", err)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		return fmt.Errorf("replicas after the first apply: %v", d.Spec.Replicas)
	}
	second := appsv1ac.Deployment("ac", e.namespace).WithSpec(appsv1ac.DeploymentSpec().WithReplicas(3))
	_, err = deployments.Apply(ctx, second, metav1.ApplyOptions{FieldManager: "two"})
	if !apierrors.IsConflict(err) {
		return fmt.Errorf("apply by two: want a conflict, got %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, `conflict with "one"`) || !strings.Contains(msg, ".spec.replicas") {
		return fmt.Errorf("conflict message: %s", msg)
	}
	d, err = deployments.Apply(ctx, second, metav1.ApplyOptions{FieldManager: "two", Force: true})
	if err != nil {
		return fmt.Errorf("forced apply by two: %w", err)
	}
	if *d.Spec.Replicas != 3 {
		return fmt.Errorf("replicas after the forced apply: %d", *d.Spec.Replicas)
	}
	// What "one" still owns no longer holds the replicas.
	mine, err := appsv1ac.ExtractDeployment(d, "one")
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	if mine.Spec == nil || mine.Spec.Replicas != nil || mine.Spec.Template == nil {
		return fmt.Errorf("one's extracted configuration: %+v", mine.Spec)
	}
	// Apply through scale: the replicas move to the scale applier.
	scale := autoscalingv1ac.Scale().WithSpec(autoscalingv1ac.ScaleSpec().WithReplicas(5))
	s, err := deployments.ApplyScale(ctx, "ac", scale, metav1.ApplyOptions{FieldManager: "autoscaler", Force: true})
	if err != nil {
		return fmt.Errorf("apply scale: %w", err)
	}
	if s.Spec.Replicas != 5 {
		return fmt.Errorf("scale replicas: %d", s.Spec.Replicas)
	}
	d, err = deployments.Get(ctx, "ac", metav1.GetOptions{})
	if err != nil {
		return err
	}
	if *d.Spec.Replicas != 5 || hasManager(d.ManagedFields, "two", metav1.ManagedFieldsOperationApply) {
		return fmt.Errorf("after the scale apply: replicas %d, entries %v", *d.Spec.Replicas, d.ManagedFields)
	}
	for _, en := range d.ManagedFields {
		if en.Manager == "autoscaler" && en.Subresource != "scale" {
			return fmt.Errorf("the scale applier's entry: %+v", en)
		}
	}
	return deployments.Delete(ctx, "ac", metav1.DeleteOptions{})
}
