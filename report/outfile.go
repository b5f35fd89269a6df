package report

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Output files (--out, --pcap) follow one contract (DESIGN.md): they are written to a
// temporary file in the target's directory and renamed into place, so a reader sees the old
// file or the whole new one; they replace only a regular file, or are created where nothing
// is, never a device node, a symbolic link (the last path element is not followed) or a
// directory; and CheckOutputPath says before a run whether the path will be accepted and
// its directory written, so a run of many seconds does not end in "cannot write".

// ErrOutputPath matches (errors.Is) every refusal of an output path: not a regular file, a
// symbolic link, a directory that does not exist or cannot be written.
var ErrOutputPath = errors.New("output file refused")

// outputError is a refusal of an output path: one sentence that names the path.
type outputError struct{ msg string }

func (e *outputError) Error() string        { return e.msg }
func (e *outputError) Is(target error) bool { return target == ErrOutputPath }

func refuse(format string, args ...any) error {
	return &outputError{msg: fmt.Sprintf(format, args...)}
}

// outputMode is the mode of a new output file; a replaced regular file keeps its own.
const outputMode = 0o644

// CheckOutputPath reports whether path may be written as an output file: nothing there, or
// a regular file (not a symbolic link to one), in an existing directory where this process
// can create a file (it creates and removes an empty temporary file to know). Its errors
// are one line that names path and starts with no prefix of its own.
func CheckOutputPath(path string) error {
	if _, err := targetMode(path); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".check*")
	if err != nil {
		return dirError(path, dir, err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("%s: remove the test file %s: %w", path, name, err)
	}
	return nil
}

// targetMode checks what is at path now: nothing (0, nil), a regular file (its permission
// bits), or an error saying why it may not be replaced.
func targetMode(path string) (fs.FileMode, error) {
	if path == "" {
		return 0, refuse("empty file name")
	}
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 0, nil
	case err != nil:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	m := fi.Mode()
	if m.IsRegular() {
		return m.Perm(), nil
	}
	what := "not a regular file"
	switch {
	case m&fs.ModeSymlink != 0:
		what = "a symbolic link"
	case m.IsDir():
		what = "a directory"
	case m&fs.ModeCharDevice != 0:
		what = "a character device"
	case m&fs.ModeDevice != 0:
		what = "a block device"
	case m&fs.ModeNamedPipe != 0:
		what = "a named pipe"
	case m&fs.ModeSocket != 0:
		what = "a socket"
	}
	return 0, refuse("%s is %s: an output file is written only where nothing is or over a regular file", path, what)
}

// dirError explains why no file for path could be created in its directory dir (err).
func dirError(path, dir string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	fi, serr := os.Stat(dir)
	switch {
	case errors.Is(serr, fs.ErrNotExist):
		return refuse("%s: directory %s does not exist", path, dir)
	case errors.Is(serr, syscall.ENOTDIR) || (serr == nil && !fi.IsDir()):
		return refuse("%s: %s is not a directory", path, dir)
	}
	return refuse("%s: cannot create a file in directory %s: %v", path, dir, err)
}

// OutputFile is an output file being written: a temporary file next to its path, which
// Commit renames into place and Abort removes.
type OutputFile struct {
	*os.File
	path string
	done bool
}

// CreateOutput starts writing the output file path (see CheckOutputPath for what is
// refused). Write to it, then Commit; Abort (or a failed Commit) leaves path as it was.
func CreateOutput(path string) (*OutputFile, error) {
	if _, err := targetMode(path); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, dirError(path, dir, err)
	}
	return &OutputFile{File: f, path: path}, nil
}

// Path is the file's final name.
func (f *OutputFile) Path() string { return f.path }

// Commit closes the temporary file and renames it over the path, after checking again that
// what is there (if anything) is a regular file: the path was checked when the run began,
// and a run takes time. A new file gets mode 0644, a replaced one keeps its mode.
func (f *OutputFile) Commit() error {
	if f.done {
		return fmt.Errorf("%s: already committed or aborted", f.path)
	}
	f.done = true
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename this finds nothing
	perm, err := targetMode(f.path)
	if err != nil {
		f.File.Close()
		return err
	}
	if perm == 0 {
		perm = outputMode
	}
	if err := f.Chmod(perm); err != nil {
		f.File.Close()
		return fmt.Errorf("%s: chmod: %w", f.path, err)
	}
	if err := f.File.Close(); err != nil {
		return fmt.Errorf("%s: write: %w", f.path, err)
	}
	return renameOutput(tmp, f.path)
}

// Abort closes and removes the temporary file; path is left as it was. Safe after Commit.
func (f *OutputFile) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.Remove(f.Name())
}

// renameOutput puts tmp at path. Where nothing is at path it links tmp there (a link never
// replaces what is there), so nothing that appeared at path since the check is replaced;
// where a regular file is, it renames (targetMode checked it just before).
func renameOutput(tmp, path string) error {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		err := os.Link(tmp, path)
		switch {
		case err == nil:
			os.Remove(tmp)
			return nil
		case errors.Is(err, fs.ErrExist):
			return refuse("%s appeared while the run went on: not replaced (the result is not written)", path)
		}
		// a file system without hard links: the plain rename below
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("%s: rename into place: %w", path, err)
	}
	return nil
}

// WriteOutputFile writes data to the output file path atomically (CreateOutput, Commit).
func WriteOutputFile(path string, data []byte) error {
	f, err := CreateOutput(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return fmt.Errorf("%s: write: %w", path, err)
	}
	return f.Commit()
}
