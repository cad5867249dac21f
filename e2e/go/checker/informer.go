package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// checkInformer runs a SharedInformerFactory (list+watch, as every controller
// does) and expects add/update/delete notifications for objects it writes.
func checkInformer(ctx context.Context, e *env) error {
	const n = 5
	prefix := fmt.Sprintf("checker-inf-%d", time.Now().UnixNano()%1000000)
	// One object that exists before the informer starts: must arrive via the initial list.
	pre := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: prefix + "-pre"}}
	if _, err := e.cs.CoreV1().ConfigMaps(e.namespace).Create(ctx, pre, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create %s: %w", pre.Name, err)
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
	factory := informers.NewSharedInformerFactoryWithOptions(e.cs, 0, informers.WithNamespace(e.namespace))
	inf := factory.Core().V1().ConfigMaps().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			mu.Lock()
			added[obj.(*corev1.ConfigMap).Name] = true
			mu.Unlock()
			notify()
		},
		UpdateFunc: func(_, obj any) {
			mu.Lock()
			updated[obj.(*corev1.ConfigMap).Name] = true
			mu.Unlock()
			notify()
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			mu.Lock()
			deleted[obj.(*corev1.ConfigMap).Name] = true
			mu.Unlock()
			notify()
		},
	})
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return fmt.Errorf("informer did not sync")
	}

	waitFor := func(what string, cond func() bool) error {
		for {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return nil
			}
			select {
			case <-changed:
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
				return fmt.Errorf("timed out waiting for %s", what)
			}
		}
	}
	if err := waitFor("initial list to deliver "+pre.Name, func() bool { return added[pre.Name] }); err != nil {
		return err
	}
	cms := e.cs.CoreV1().ConfigMaps(e.namespace)
	names := []string{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s-%d", prefix, i)
		names = append(names, name)
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"i": "0"}}, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
	}
	if err := waitFor("add events", func() bool { return all(added, names) }); err != nil {
		return err
	}
	for _, name := range names {
		if _, err := cms.Patch(ctx, name, "application/merge-patch+json", []byte(`{"data":{"i":"1"}}`), metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("patch %s: %w", name, err)
		}
	}
	if err := waitFor("update events", func() bool { return all(updated, names) }); err != nil {
		return err
	}
	// The lister (the informer's cache) must reflect the update.
	lister := factory.Core().V1().ConfigMaps().Lister().ConfigMaps(e.namespace)
	if err := waitFor("lister to show updates", func() bool {
		for _, name := range names {
			cm, err := lister.Get(name)
			if err != nil || cm.Data["i"] != "1" {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	for _, name := range append(names, pre.Name) {
		if err := cms.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			return fmt.Errorf("delete %s: %w", name, err)
		}
	}
	return waitFor("delete events", func() bool { return all(deleted, append(names, pre.Name)) })
}

func all(set map[string]bool, names []string) bool {
	for _, n := range names {
		if !set[n] {
			return false
		}
	}
	return true
}

// checkWatch opens a raw watch at a list's resourceVersion and expects
// ADDED, MODIFIED, DELETED for one object, in order, with increasing
// resourceVersions; then re-watches from the ADDED event's version and expects
// the same history replayed.
func checkWatch(ctx context.Context, e *env) error {
	cms := e.cs.CoreV1().ConfigMaps(e.namespace)
	name := fmt.Sprintf("checker-watch-%d", time.Now().UnixNano()%1000000)
	list, err := cms.List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, FieldSelector: "metadata.name=" + name})
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer w.Stop()
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if _, err := cms.Patch(ctx, name, "application/merge-patch+json", []byte(`{"data":{"a":"b"}}`), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("patch: %w", err)
	}
	if err := cms.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	want := []watch.EventType{watch.Added, watch.Modified, watch.Deleted}
	firstRV, err := expectEvents(ctx, w, want)
	if err != nil {
		return err
	}
	// Replay: watching from just before ADDED (the list's RV) again yields the same events.
	w2, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, FieldSelector: "metadata.name=" + name})
	if err != nil {
		return fmt.Errorf("re-watch: %w", err)
	}
	defer w2.Stop()
	rv2, err := expectEvents(ctx, w2, want)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if rv2 != firstRV {
		return fmt.Errorf("replay: first event resourceVersion %s != %s", rv2, firstRV)
	}
	return nil
}

func expectEvents(ctx context.Context, w watch.Interface, want []watch.EventType) (string, error) {
	var first, last string
	for i, t := range want {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return "", fmt.Errorf("watch closed after %d events", i)
			}
			if ev.Type != t {
				return "", fmt.Errorf("event %d: got %s (%v), want %s", i, ev.Type, ev.Object, t)
			}
			cm, ok := ev.Object.(*corev1.ConfigMap)
			if !ok {
				return "", fmt.Errorf("event %d: object is %T", i, ev.Object)
			}
			if cm.ResourceVersion == "" || cm.ResourceVersion == last {
				return "", fmt.Errorf("event %d: resourceVersion %q not new", i, cm.ResourceVersion)
			}
			if i == 0 {
				first = cm.ResourceVersion
			}
			last = cm.ResourceVersion
		case <-time.After(30 * time.Second):
			return "", fmt.Errorf("timed out waiting for %s event", t)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	return first, nil
}
