package config

import (
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the README's configuration table from Vars")

const (
	tableBegin = "<!-- config table: generated from internal/config.Vars by `go test ./internal/config -update` -->\n"
	tableEnd   = "<!-- end of config table -->\n"
)

// table renders Vars as the README's Markdown table.
func table() string {
	var b strings.Builder
	b.WriteString("| variable | default | meaning |\n|---|---|---|\n")
	for _, v := range Vars {
		def := "`" + v.Default + "`"
		if v.Default == "" {
			def = ""
		}
		usage := v.Usage
		if v.Secret {
			usage += " (secret)"
		}
		b.WriteString("| `" + v.Name + "` | " + def + " | " + strings.ReplaceAll(usage, "|", `\|`) + " |\n")
	}
	return b.String()
}

// TestREADMETable keeps the README's configuration table equal to Vars.
func TestREADMETable(t *testing.T) {
	path := filepath.Join("..", "..", "README.md")
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok1 := strings.Cut(string(readme), tableBegin)
	current, after, ok2 := strings.Cut(rest, tableEnd)
	if !ok1 || !ok2 {
		t.Fatalf("README.md lacks the configuration table markers %q ... %q", tableBegin, tableEnd)
	}
	if current == table() {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(before+tableBegin+table()+tableEnd+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Error("the README's configuration table differs from config.Vars; run `go test ./internal/config -update`")
}

// read matches the ways oidcflow's code reads an environment variable.
var read = regexp.MustCompile(`(?:(?:String|Required|Duration|Int|Bool|Getenv|LookupEnv)\(|(?:Setting|Env)[A-Za-z]* *= *)"((?:OIDCFLOW|TEMPORAL|VAULT)_[A-Z0-9_]+)"`)

// TestEveryVariableIsDocumented checks that each variable the code reads is in Vars (and so
// in the README's table).
func TestEveryVariableIsDocumented(t *testing.T) {
	documented := map[string]bool{}
	for _, v := range Vars {
		if documented[v.Name] {
			t.Errorf("%s is listed twice in Vars", v.Name)
		}
		documented[v.Name] = true
	}
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (d.Name() == "tools" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range read.FindAllStringSubmatch(string(src), -1) {
			if !documented[m[1]] {
				t.Errorf("%s reads %s, which config.Vars (and so the README) does not document", path, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
