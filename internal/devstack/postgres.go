package devstack

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"

	"github.com/jackc/pgx/v5"

	"github.com/oidcflow/oidcflow/activities"
)

// ErrPostgresMissing is returned when no PostgreSQL server binaries are found.
var ErrPostgresMissing = errors.New("PostgreSQL binaries not found (install the Debian package: apt-get install -y postgresql)")

// PostgresBinDir finds the folder holding initdb and postgres: $OIDCFLOW_POSTGRES_BIN, else
// the newest /usr/lib/postgresql/<version>/bin, else the PATH.
func PostgresBinDir() (string, error) {
	if d := os.Getenv("OIDCFLOW_POSTGRES_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrPostgresMissing
}

type pgState struct {
	Password string `json:"password"`
}

// postgresCred: PostgreSQL refuses to run as root, so as root we run it as the system user
// "postgres" (created by the Debian package).
func postgresCred() (*syscall.Credential, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, -1, -1, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("running as root needs the system user postgres: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, uid, gid, nil
}

func (l *Launcher) postgresURL(db string) string {
	var st pgState
	_ = loadOrCreateJSON(l.path("postgres", "secrets.json"), &st, func() error { return nil })
	u := url.URL{
		Scheme: "postgres", User: url.UserPassword(PostgresUser, st.Password),
		Host: hostPort(PortPostgres), Path: "/" + db, RawQuery: "sslmode=disable",
	}
	return u.String()
}

// createDatabase creates db unless it exists.
func (l *Launcher) createDatabase(ctx context.Context, db string) error {
	conn, err := pgx.Connect(ctx, l.postgresURL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		var pgErr interface{ SQLState() string }
		if errors.As(err, &pgErr) && pgErr.SQLState() == "42P04" { // created concurrently
			return nil
		}
		return fmt.Errorf("create database %s: %w", db, err)
	}
	return nil
}

func (l *Launcher) postgres() *service {
	data := l.path("postgres", "data")
	s := &service{name: "postgres", binary: data, ports: []int{PortPostgres}, stopSig: syscall.SIGINT}
	s.prepare = func(ctx context.Context) error {
		bin, err := PostgresBinDir()
		if err != nil {
			return err
		}
		if err := os.MkdirAll(l.path("postgres"), 0o755); err != nil {
			return err
		}
		var st pgState
		if err := loadOrCreateJSON(l.path("postgres", "secrets.json"), &st, func() error {
			st.Password = randomSecret(16)
			return nil
		}); err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err == nil {
			return nil
		}
		cred, uid, gid, err := postgresCred()
		if err != nil {
			return err
		}
		_ = os.RemoveAll(data)
		if err := os.Mkdir(data, 0o700); err != nil {
			return err
		}
		pw := l.path("postgres", "initdb.pw")
		if err := os.WriteFile(pw, []byte(st.Password+"\n"), 0o600); err != nil {
			return err
		}
		defer os.Remove(pw)
		if uid >= 0 {
			if err := os.Chown(data, uid, gid); err != nil {
				return err
			}
			if err := os.Chown(pw, uid, gid); err != nil {
				return err
			}
		}
		l.printf("postgres initialising %s", l.rel(data))
		logf, err := os.OpenFile(l.logPath(s), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer logf.Close()
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", PostgresUser,
			"--pwfile="+pw, "--auth-host=scram-sha-256", "--auth-local=scram-sha-256",
			"-E", "UTF8", "--no-locale", "--no-instructions")
		cmd.Dir = l.path("postgres")
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("initdb: %w", err)
		}
		return nil
	}
	s.command = func() ([]string, []string, *syscall.Credential, error) {
		bin, err := PostgresBinDir()
		if err != nil {
			return nil, nil, nil, err
		}
		cred, _, _, err := postgresCred()
		if err != nil {
			return nil, nil, nil, err
		}
		argv := []string{filepath.Join(bin, "postgres"), "-D", data,
			"-p", strconv.Itoa(PortPostgres), "-c", "listen_addresses=" + Host,
			"-c", "unix_socket_directories=", "-c", "logging_collector=off"}
		return argv, []string{"LANG=C", "PATH=/usr/bin:/bin"}, cred, nil
	}
	s.ready = func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, l.postgresURL("postgres"))
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		return conn.Ping(ctx)
	}
	s.seed = func(ctx context.Context) error {
		if err := l.createDatabase(ctx, PostgresDatabase); err != nil {
			return err
		}
		// The demo database of the access workflows, with its read and write group roles.
		if err := activities.Bootstrap(ctx, l.postgresURL(PostgresDatabase), activities.BootstrapOptions{Database: DemoDatabase}); err != nil {
			return fmt.Errorf("bootstrap database %s: %w", DemoDatabase, err)
		}
		l.setEnv(EnvPostgresURL, l.postgresURL(PostgresDatabase))
		return nil
	}
	return s
}
