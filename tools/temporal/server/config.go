package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/components/callbacks"
	"go.temporal.io/server/components/nexusoperations"
	sqliteschema "go.temporal.io/server/schema/sqlite"
)

// sqliteConfig is start-dev's SQLite store: the schema is set up when the file is missing,
// and every --namespace is created (24h retention, the --search-attribute set) unless it
// exists already.
func sqliteConfig(o *options) (*config.SQL, error) {
	c := config.SQL{
		PluginName:        sqliteplugin.PluginName,
		DatabaseName:      o.dbFile,
		ConnectAttributes: map[string]string{"mode": "rwc"},
	}
	if _, err := os.Stat(o.dbFile); os.IsNotExist(err) {
		if _, err := os.Stat(filepath.Dir(o.dbFile)); err != nil {
			return nil, fmt.Errorf("folder of --db-filename: %w", err)
		}
		if err := sqliteschema.SetupSchema(&c); err != nil {
			return nil, fmt.Errorf("setting up the SQLite schema: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("--db-filename: %w", err)
	}
	nss := make([]*sqliteschema.NamespaceConfig, 0, len(o.namespaces))
	for _, ns := range o.namespaces {
		nc, err := sqliteschema.NewNamespaceConfig("active", ns, false, o.searchAttrs)
		if err != nil {
			return nil, fmt.Errorf("namespace %s: %w", ns, err)
		}
		nss = append(nss, nc)
	}
	if err := sqliteschema.CreateNamespaces(&c, nss...); err != nil {
		return nil, fmt.Errorf("creating namespaces: %w", err)
	}
	return &c, nil
}

// startDevDefaults are the dynamic config values start-dev sets unless given.
var startDevDefaults = map[string]any{
	"system.forceSearchAttributesCacheRefreshOnRead": true,
	"frontend.persistenceMaxQPS":                     10000,
	"history.persistenceMaxQPS":                      45000,
}

// dynamicConfig is start-dev's dynamic config, then --dynamic-config-value. Nexus callbacks
// go to the frontend's HTTP port as in start-dev; with authorization on they carry no token
// and are refused (Nexus operations that complete asynchronously do not work then).
func dynamicConfig(o *options, p ports) dynamicconfig.StaticClient {
	callbackHost := net.JoinHostPort(loopbackFor(o.ip), strconv.Itoa(p.frontendHTTP))
	dc := dynamicconfig.StaticClient{
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key():                 8096,
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
		nexusoperations.CallbackURLTemplate.Key():                        "http://" + callbackHost + "/namespaces/{{.NamespaceName}}/nexus/callback",
		callbacks.AllowedAddresses.Key(): []struct {
			Pattern       string
			AllowInsecure bool
		}{{Pattern: callbackHost, AllowInsecure: true}},
	}
	for k, v := range startDevDefaults {
		dc[dynamicconfig.Key(k)] = v
	}
	for k, v := range o.dynConfig {
		dc[dynamicconfig.Key(k)] = v
	}
	return dc
}
