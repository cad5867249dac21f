//go:build tools

// Package tools pins the Helm 4 CLI this module builds (it applies
// server-side by default).
package tools

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
