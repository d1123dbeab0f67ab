// Package gen_test checks that the committed stubs under gen/ are what
// buf.gen.yaml generates from proto/ now.
package gen_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

func TestGeneratedCodeIsFresh(t *testing.T) {
	buf, err := filepath.Abs(filepath.Join("..", "..", "node_modules", ".bin", "buf"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(buf); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("buf is not installed (%v): run npm install at the repository root", err)
		}
		t.Skipf("buf is not installed (%v): run npm install at the repository root", err)
	}
	out := t.TempDir()
	generate := exec.Command(buf, "generate", "--template", "buf.gen.yaml", "--output", out)
	if output, err := generate.CombinedOutput(); err != nil {
		t.Fatalf("buf generate: %v\n%s", err, output)
	}

	want := readTree(t, filepath.Join(out, "gen"))
	got := readTree(t, "gen")
	for _, name := range sortedKeys(want) {
		if _, ok := got[name]; !ok {
			t.Errorf("gen/%s is missing", name)
		} else if !bytes.Equal(got[name], want[name]) {
			t.Errorf("gen/%s differs from what buf generates", name)
		}
	}
	for _, name := range sortedKeys(got) {
		if _, ok := want[name]; !ok {
			t.Errorf("gen/%s is not generated any more", name)
		}
	}
	if t.Failed() {
		t.Log("regenerate: cd clients/go && rm -rf gen && ../../node_modules/.bin/buf generate")
	}
}

// readTree maps the path of every file under root, relative to it, to its content.
func readTree(t *testing.T, root string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		content, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		files[filepath.ToSlash(rel)] = content
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
