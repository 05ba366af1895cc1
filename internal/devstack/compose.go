package devstack

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/oidcflow/oidcflow/internal/devstack/idp"
)

// ComposeInit prepares the state folder for docker-compose.yml before any server starts:
// generated secrets (Hydra's system secret, the token hook key, client secrets, the
// PostgreSQL password), Hydra's configuration (PostgreSQL database "hydra") and the
// persona state of the login/consent app. It keeps what exists.
func (l *Launcher) ComposeInit() error {
	for _, d := range []string{"", "hydra", "postgres", "idp"} {
		if err := os.MkdirAll(l.path(d), 0o755); err != nil {
			return fmt.Errorf("devstack: %w", err)
		}
	}
	var pg pgState
	if err := loadOrCreateJSON(l.path("postgres", "secrets.json"), &pg, func() error {
		pg.Password = randomSecret(16)
		return nil
	}); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	// The postgres image reads POSTGRES_PASSWORD_FILE.
	if err := writeSecretFile(l.path("postgres", "password"), []byte(pg.Password)); err != nil {
		return err
	}
	sec, err := l.hydraSecrets()
	if err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	dsn := (&url.URL{Scheme: "postgres", User: url.UserPassword(PostgresUser, pg.Password),
		Host: hostPort(PortPostgres), Path: "/" + HydraDatabase, RawQuery: "sslmode=disable"}).String()
	b, _ := json.MarshalIndent(HydraConfig(dsn, sec, l.getenv), "", "  ")
	if err := writeSecretFile(l.path("hydra", "hydra.yaml"), b); err != nil {
		return err
	}
	// The login/consent app reads its hook key from this file in compose.
	if err := writeSecretFile(l.path("idp", "hook-key"), []byte(sec.HookKey)); err != nil {
		return err
	}
	state := l.path("idp", "personas.json")
	if _, err := os.Stat(state); err != nil {
		if err := os.WriteFile(state, idp.DefaultPersonas, 0o644); err != nil {
			return fmt.Errorf("devstack: %w", err)
		}
	}
	l.printf("compose state prepared in %s", filepath.Clean(l.state))
	return nil
}
