package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// checkCustom installs a CRD with the dynamic client, waits until it is
// Established, and runs a dynamic shared informer plus CRUD, a status
// update and a label-selected list on its custom resources, as Go
// operators do; the CRD is deleted at the end.
func checkCustom(ctx context.Context, e *env) error {
	dyn, err := dynamic.NewForConfig(e.cfg)
	if err != nil {
		return err
	}
	group := e.namespace + ".checker.example.com"
	name := "probes." + group
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": name},
		"spec": map[string]any{
			"group": group,
			"scope": "Namespaced",
			"names": map[string]any{"plural": "probes", "singular": "probe", "kind": "Probe"},
			"versions": []any{map[string]any{
				"name": "v1", "served": true, "storage": true,
				"subresources": map[string]any{"status": map[string]any{}},
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object",
					"properties": map[string]any{
						"spec":   map[string]any{"type": "object", "properties": map[string]any{"n": map[string]any{"type": "integer"}}},
						"status": map[string]any{"type": "object", "properties": map[string]any{"seen": map[string]any{"type": "integer"}}},
					},
				}},
			}},
		},
	}}
	if _, err := dyn.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create CRD: %w", err)
	}
	defer func() {
		_ = dyn.Resource(crdGVR).Delete(context.Background(), name, metav1.DeleteOptions{})
	}()
	gvr := schema.GroupVersionResource{Group: group, Version: "v1", Resource: "probes"}
	probes := dyn.Resource(gvr).Namespace(e.namespace)
	// Established, then served.
	for {
		got, err := dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get CRD: %w", err)
		}
		conditions, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		established := false
		for _, c := range conditions {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				established = true
			}
		}
		if established {
			if _, err := probes.List(ctx, metav1.ListOptions{}); err == nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRD never established")
		case <-time.After(50 * time.Millisecond):
		}
	}

	var mu sync.Mutex
	added, updated, deleted := map[string]bool{}, map[string]bool{}, map[string]bool{}
	changed := make(chan struct{}, 100)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	factory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, e.namespace, nil)
	inf := factory.ForResource(gvr).Informer()
	nameOf := func(obj any) string {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		return obj.(*unstructured.Unstructured).GetName()
	}
	_, err = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { mu.Lock(); added[nameOf(obj)] = true; mu.Unlock(); notify() },
		UpdateFunc: func(_, obj any) { mu.Lock(); updated[nameOf(obj)] = true; mu.Unlock(); notify() },
		DeleteFunc: func(obj any) { mu.Lock(); deleted[nameOf(obj)] = true; mu.Unlock(); notify() },
	})
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return fmt.Errorf("informer never synced")
	}
	for i := 0; i < 3; i++ {
		p := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": group + "/v1", "kind": "Probe",
			"metadata": map[string]any{"name": fmt.Sprintf("p%d", i), "labels": map[string]any{"idx": fmt.Sprint(i)}},
			"spec":     map[string]any{"n": int64(i)},
		}}
		if _, err := probes.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create probe: %w", err)
		}
	}
	p0, err := probes.Get(ctx, "p0", metav1.GetOptions{})
	if err != nil {
		return err
	}
	_ = unstructured.SetNestedField(p0.Object, int64(7), "status", "seen")
	if _, err := probes.UpdateStatus(ctx, p0, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update status: %w", err)
	}
	sel, err := probes.List(ctx, metav1.ListOptions{LabelSelector: "idx in (1,2)"})
	if err != nil || len(sel.Items) != 2 {
		return fmt.Errorf("label-selected list: %v items, %v", len(sel.Items), err)
	}
	if err := probes.Delete(ctx, "p2", metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	for {
		mu.Lock()
		done := len(added) == 3 && updated["p0"] && deleted["p2"]
		mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("informer saw added=%v updated=%v deleted=%v", added, updated, deleted)
		case <-changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
}
