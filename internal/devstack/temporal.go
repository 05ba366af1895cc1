package devstack

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"syscall"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// DynamicConfig holds the dev server's dynamic config values (JSON) beyond the CLI's own.
// Worker Deployment Versioning needs none turned on: server 1.29 has
// system.enableDeploymentVersions and frontend.workerVersioningWorkflowAPIs on by default. A
// build that stopped being current is first checked for drainage (no open run pinned to it)
// a grace period later, then at an interval, minutes each by default; seconds here, so that a
// roll to a new build can be watched, and tested, to the end. The grace period covers the
// delay of visibility, which a single SQLite server does not have.
var DynamicConfig = map[string]string{
	"matching.wv.VersionDrainageStatusVisibilityGracePeriod": `"10s"`,
	"matching.wv.VersionDrainageStatusRefreshInterval":       `"5s"`,
}

// temporal runs `temporal server start-dev` with a SQLite file, the oidcflow namespace,
// the search attributes of SearchAttributes and DynamicConfig.
func (l *Launcher) temporal() *service {
	s := &service{name: "temporal", binary: l.path("temporal", "temporal.db"), ports: []int{PortTemporal, PortTemporalUI}, stopSig: syscall.SIGTERM}
	s.prepare = func(context.Context) error { return os.MkdirAll(l.path("temporal"), 0o755) }
	s.command = func() ([]string, []string, *syscall.Credential, error) {
		bin, err := l.tool("temporal")
		if err != nil {
			return nil, nil, nil, err
		}
		argv := []string{bin, "server", "start-dev",
			"--db-filename", l.path("temporal", "temporal.db"),
			"--ip", Host, "--port", strconv.Itoa(PortTemporal),
			"--ui-ip", Host, "--ui-port", strconv.Itoa(PortTemporalUI),
			"--namespace", TemporalNamespace,
			"--log-format", "json", "--log-level", "warn",
		}
		names := make([]string, 0, len(SearchAttributes))
		for n := range SearchAttributes {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			argv = append(argv, "--search-attribute", n+"="+SearchAttributes[n])
		}
		keys := make([]string, 0, len(DynamicConfig))
		for k := range DynamicConfig {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			argv = append(argv, "--dynamic-config-value", k+"="+DynamicConfig[k])
		}
		return argv, baseEnv(), nil, nil
	}
	s.ready = func(ctx context.Context) error {
		if err := httpGetOK(ctx, TemporalUIURL()+"/"); err != nil {
			return fmt.Errorf("web ui: %w", err)
		}
		c, err := client.DialContext(ctx, client.Options{HostPort: TemporalAddress(), Namespace: TemporalNamespace, Logger: quietLogger{}})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.WorkflowService().DescribeNamespace(ctx, describeNamespace())
		return err
	}
	s.seed = func(ctx context.Context) error {
		c, err := client.DialContext(ctx, client.Options{HostPort: TemporalAddress(), Namespace: TemporalNamespace, Logger: quietLogger{}})
		if err != nil {
			return err
		}
		defer c.Close()
		have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: TemporalNamespace})
		if err != nil {
			return err
		}
		missing := map[string]enums.IndexedValueType{}
		for n, t := range SearchAttributes {
			if _, ok := have.GetCustomAttributes()[n]; !ok {
				missing[n] = enums.IndexedValueType(enums.IndexedValueType_value["INDEXED_VALUE_TYPE_"+upper(t)])
			}
		}
		if len(missing) > 0 {
			if _, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
				Namespace: TemporalNamespace, SearchAttributes: missing,
			}); err != nil {
				return fmt.Errorf("search attributes: %w", err)
			}
		}
		l.setEnv(EnvTemporalAddress, TemporalAddress(), EnvTemporalNamespace, TemporalNamespace,
			EnvTemporalUIURL, TemporalUIURL(), EnvTaskQueue, TaskQueue)
		return nil
	}
	return s
}

// upper turns a search attribute type name ("KeywordList") into its enum suffix
// ("KEYWORD_LIST").
func upper(t string) string {
	var b []byte
	for i, r := range t {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b = append(b, '_')
		}
		if r >= 'a' && r <= 'z' {
			r -= 'a' - 'A'
		}
		b = append(b, byte(r))
	}
	return string(b)
}

func describeNamespace() *workflowservice.DescribeNamespaceRequest {
	return &workflowservice.DescribeNamespaceRequest{Namespace: TemporalNamespace}
}

// quietLogger drops the SDK client's logs during health probes.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
