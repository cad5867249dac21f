// Command checker is a small, real client-go program used by the e2e tests to
// exercise a Kubernetes API server (the host, or nestkube's own apiserver) the
// way Go controllers do: typed CRUD, shared informers and raw watches.
//
//	checker version  --kubeconfig F
//	checker crud     --kubeconfig F --namespace N
//	checker informer --kubeconfig F --namespace N
//	checker watch    --kubeconfig F --namespace N
//	checker custom   --kubeconfig F --namespace N   (a CRD, its resources, a dynamic informer)
//	checker ssa      --kubeconfig F --namespace N   (Flux's SSA engine, typed apply configurations)
//	checker all      --kubeconfig F --namespace N
//
// The namespace is created if it does not exist (and then deleted at the end,
// unless --keep-namespace). Exit code 0 means every check passed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
)

type env struct {
	cfg       *rest.Config
	cs        kubernetes.Interface
	namespace string
	timeout   time.Duration
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: checker {version|crud|informer|watch|custom|ssa|all} --kubeconfig FILE [--namespace NS] [--timeout 60s] [--keep-namespace]\n")
	fmt.Fprintf(os.Stderr, "       checker webhook --kubeconfig FILE [--host ADDR] [--port 9443] --cert-dir DIR   (kubebuilder-style CronTab webhooks)\n")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" {
		usage()
	}
	cmd := os.Args[1]
	if cmd == "webhook" {
		runWebhook(os.Args[2:])
		return
	}
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "path to a kubeconfig file")
	kctx := fs.String("context", "", "kubeconfig context to use (default: current)")
	namespace := fs.String("namespace", "checker", "namespace to work in (created if missing)")
	timeout := fs.Duration("timeout", 60*time.Second, "overall timeout for the subcommand")
	keepNS := fs.Bool("keep-namespace", false, "do not delete a namespace this run created")
	_ = fs.Parse(os.Args[2:])
	if *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "checker: --kubeconfig is required")
		os.Exit(2)
	}

	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: *kubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: *kctx},
	).ClientConfig()
	if err != nil {
		fail("load kubeconfig: %v", err)
	}
	cfg.UserAgent = "nestkube-e2e-checker"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fail("client: %v", err)
	}
	e := &env{cfg: cfg, cs: cs, namespace: *namespace, timeout: *timeout}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	checks := map[string]func(context.Context, *env) error{
		"version":  checkVersion,
		"crud":     checkCRUD,
		"informer": checkInformer,
		"watch":    checkWatch,
		"custom":   checkCustom,
		"ssa":      checkSSA,
	}
	var order []string
	switch cmd {
	case "all":
		order = []string{"version", "crud", "informer", "watch", "custom", "ssa"}
	default:
		if _, ok := checks[cmd]; !ok {
			usage()
		}
		order = []string{cmd}
	}

	created := false
	if cmd != "version" {
		created, err = ensureNamespace(ctx, e)
		if err != nil {
			fail("namespace %s: %v", e.namespace, err)
		}
	}
	failed := false
	for _, name := range order {
		start := time.Now()
		if err := checks[name](ctx, e); err != nil {
			fmt.Printf("FAIL %s: %v\n", name, err)
			failed = true
			break
		}
		fmt.Printf("PASS %s (%s)\n", name, time.Since(start).Round(time.Millisecond))
	}
	if created && !*keepNS {
		dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer dcancel()
		if err := cs.CoreV1().Namespaces().Delete(dctx, e.namespace, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			fmt.Fprintf(os.Stderr, "checker: delete namespace %s: %v\n", e.namespace, err)
		}
	}
	if failed {
		os.Exit(1)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "checker: "+format+"\n", args...)
	os.Exit(1)
}

func ensureNamespace(ctx context.Context, e *env) (bool, error) {
	_, err := e.cs.CoreV1().Namespaces().Get(ctx, e.namespace, metav1.GetOptions{})
	if err == nil {
		return false, nil
	}
	if !apierrors.IsNotFound(err) {
		return false, err
	}
	_, err = e.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.namespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return false, err
	}
	return err == nil, nil
}

func checkVersion(ctx context.Context, e *env) error {
	v, err := e.cs.Discovery().ServerVersion()
	if err != nil {
		return err
	}
	fmt.Printf("server version: %s (%s/%s)\n", v.GitVersion, v.Major, v.Minor)
	groups, err := e.cs.Discovery().ServerGroups()
	if err != nil {
		return fmt.Errorf("server groups: %w", err)
	}
	if len(groups.Groups) == 0 {
		return fmt.Errorf("no API groups discovered")
	}
	return nil
}

// checkCRUD exercises typed create/get/list/update/patch/delete on ConfigMaps
// and create/get/scale/delete on a Deployment.
func checkCRUD(ctx context.Context, e *env) error {
	cms := e.cs.CoreV1().ConfigMaps(e.namespace)
	name := fmt.Sprintf("checker-crud-%d", time.Now().UnixNano()%1000000)
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "checker"}},
		Data:       map[string]string{"k": "v1"},
	}
	created, err := cms.Create(ctx, cm, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if created.UID == "" || created.ResourceVersion == "" || created.CreationTimestamp.IsZero() {
		return fmt.Errorf("create: server did not set uid/resourceVersion/creationTimestamp: %+v", created.ObjectMeta)
	}
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("second create: want AlreadyExists, got %v", err)
	}
	got, err := cms.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	if got.Data["k"] != "v1" {
		return fmt.Errorf("get: data = %v", got.Data)
	}
	list, err := cms.List(ctx, metav1.ListOptions{LabelSelector: "app=checker"})
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	found := false
	for _, it := range list.Items {
		found = found || it.Name == name
	}
	if !found || list.ResourceVersion == "" {
		return fmt.Errorf("list: %s not found by label selector (rv %q)", name, list.ResourceVersion)
	}
	got.Data["k"] = "v2"
	updated, err := cms.Update(ctx, got, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	if updated.ResourceVersion == got.ResourceVersion {
		return fmt.Errorf("update: resourceVersion did not change")
	}
	got.Data["k"] = "stale"
	if _, err := cms.Update(ctx, got, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		return fmt.Errorf("stale update: want Conflict, got %v", err)
	}
	patched, err := cms.Patch(ctx, name, types.MergePatchType, []byte(`{"data":{"p":"x"}}`), metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("merge patch: %w", err)
	}
	if patched.Data["p"] != "x" || patched.Data["k"] != "v2" {
		return fmt.Errorf("merge patch: data = %v", patched.Data)
	}
	patched, err = cms.Patch(ctx, name, types.StrategicMergePatchType, []byte(`{"metadata":{"labels":{"smp":"yes"}}}`), metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("strategic merge patch: %w", err)
	}
	if patched.Labels["smp"] != "yes" || patched.Labels["app"] != "checker" {
		return fmt.Errorf("strategic merge patch: labels = %v", patched.Labels)
	}
	if err := cms.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if _, err := cms.Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		return fmt.Errorf("get after delete: want NotFound, got %v", err)
	}

	// A Deployment: nested defaulting and the scale subresource.
	deps := e.cs.AppsV1().Deployments(e.namespace)
	one := int32(1)
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
			},
		},
	}
	cd, err := deps.Create(ctx, d, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create deployment: %w", err)
	}
	if cd.Spec.Strategy.Type == "" || cd.Spec.Template.Spec.RestartPolicy == "" {
		return fmt.Errorf("create deployment: defaults not applied (strategy %q, restartPolicy %q)", cd.Spec.Strategy.Type, cd.Spec.Template.Spec.RestartPolicy)
	}
	// GetScale+UpdateScale carries the Deployment's resourceVersion; the
	// deployment controller may write status in between, so retry on Conflict
	// as real clients do.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sc, err := deps.GetScale(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get scale: %w", err)
		}
		if sc.Spec.Replicas != 1 {
			return fmt.Errorf("get scale: replicas %d, want 1", sc.Spec.Replicas)
		}
		sc.Spec.Replicas = 2
		_, err = deps.UpdateScale(ctx, name, sc, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("update scale: %w", err)
	}
	cd, err = deps.Get(ctx, name, metav1.GetOptions{})
	if err != nil || cd.Spec.Replicas == nil || *cd.Spec.Replicas != 2 {
		return fmt.Errorf("get deployment after scale: %v (replicas %v)", err, cd.Spec.Replicas)
	}
	if err := deps.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("delete deployment: %w", err)
	}
	return nil
}
