package main

import (
	"context"
	"io"
	"log/slog"
	"os"

	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

// newSlog builds the process logger: JSON or text on w, at the lower of info and level so
// the server's own lifecycle lines are always written.
func newSlog(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: min(level, slog.LevelInfo)}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// tlog adapts slog to Temporal's log.Logger, dropping lines below level.
type tlog struct {
	log   *slog.Logger
	level slog.Level
}

var (
	_ log.Logger     = tlog{}
	_ log.WithLogger = tlog{}
)

func (l tlog) Debug(msg string, tags ...tag.Tag)  { l.write(slog.LevelDebug, msg, tags) }
func (l tlog) Info(msg string, tags ...tag.Tag)   { l.write(slog.LevelInfo, msg, tags) }
func (l tlog) Warn(msg string, tags ...tag.Tag)   { l.write(slog.LevelWarn, msg, tags) }
func (l tlog) Error(msg string, tags ...tag.Tag)  { l.write(slog.LevelError, msg, tags) }
func (l tlog) DPanic(msg string, tags ...tag.Tag) { l.write(slog.LevelError, msg, tags) }

func (l tlog) Panic(msg string, tags ...tag.Tag) {
	l.write(slog.LevelError, msg, tags)
	panic(msg)
}

func (l tlog) Fatal(msg string, tags ...tag.Tag) {
	l.write(slog.LevelError, msg, tags)
	os.Exit(1)
}

func (l tlog) With(tags ...tag.Tag) log.Logger {
	args := make([]any, 0, len(tags))
	for _, t := range tags {
		args = append(args, slog.Any(t.Key(), tagValue(t)))
	}
	return tlog{log: l.log.With(args...), level: l.level}
}

func (l tlog) write(level slog.Level, msg string, tags []tag.Tag) {
	if level < l.level || !l.log.Enabled(context.Background(), level) {
		return
	}
	attrs := make([]slog.Attr, len(tags))
	for i, t := range tags {
		attrs[i] = slog.Any(t.Key(), tagValue(t))
	}
	l.log.LogAttrs(context.Background(), level, msg, attrs...)
}

func tagValue(t tag.Tag) any { return t.Value() }

// withLevel is the same logger dropping lines below level.
func (l tlog) withLevel(level slog.Level) tlog { return tlog{log: l.log, level: level} }
