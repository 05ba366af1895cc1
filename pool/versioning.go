package pool

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// deploymentOptions are the worker options of c's versioning: none when c.BuildID is empty
// (the SDK refuses a default behaviour without versioning).
func (c Config) deploymentOptions() worker.DeploymentOptions {
	if c.BuildID == "" {
		return worker.DeploymentOptions{}
	}
	return worker.DeploymentOptions{
		UseVersioning:             true,
		Version:                   worker.WorkerDeploymentVersion{DeploymentName: c.DeploymentName, BuildID: c.BuildID},
		DefaultVersioningBehavior: c.DefaultVersioningBehavior,
	}
}

// sweeperVersioning is the versioning behaviour of the pool's sweeper workflow: pinned. A
// run lasts minutes at most (sweeperRunTimeout) and the schedule starts the next one on the
// current build, so a sweep never sees two builds' code and never needs patching.
const sweeperVersioning = workflow.VersioningBehaviorPinned

// SetCurrentIfUnset makes buildID the current version of Worker Deployment deployment when
// the deployment has never had a current version: its first build. It reports whether it
// did. It leaves alone a deployment that has a current version, one whose current version
// an operator ever set (including back to unversioned workers, `set-current-version
// --unversioned`, which looks like no current version), one that ramps a version, and one
// with a manager identity (a person or a controller that manages its routing); and it
// passes the conflict token of what it read, so a concurrent change wins. Every worker of
// a first build may call it: the first one sets it, the others find it set.
//
// The server lists a build once its workers poll, and refuses a current version without
// pollers, so call it after this build's workers started (Run does, with
// Config.SetCurrentIfUnset); until then it waits and asks again, up to ctx's end. The
// caller's Temporal identity must be allowed to change the deployment's routing.
func SetCurrentIfUnset(ctx context.Context, c client.Client, deployment, buildID string) (bool, error) {
	if deployment == "" || buildID == "" {
		return false, fmt.Errorf("%w: SetCurrentIfUnset needs a deployment name and a build id", ErrConfig)
	}
	h := c.WorkerDeploymentClient().GetHandle(deployment)
	wait := 200 * time.Millisecond
	var last error
	for {
		set, retry, err := setCurrentOnce(ctx, h, deployment, buildID)
		if !retry {
			return set, err
		}
		last = err
		select {
		case <-ctx.Done():
			if last == nil {
				last = errors.New("the server does not list the build yet (do its workers poll?)")
			}
			return false, fmt.Errorf("pool: make build %s current in worker deployment %s: %w (last: %w)", buildID, deployment, ctx.Err(), last)
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// setCurrentOnce is one attempt of SetCurrentIfUnset; retry says to ask again later.
func setCurrentOnce(ctx context.Context, h client.WorkerDeploymentHandle, deployment, buildID string) (set, retry bool, err error) {
	d, err := h.Describe(ctx, client.WorkerDeploymentDescribeOptions{})
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		return false, true, nil // no worker of the deployment polled yet
	case err != nil:
		return false, false, fmt.Errorf("pool: describe worker deployment %s: %w", deployment, err)
	}
	rc := d.Info.RoutingConfig
	if rc.CurrentVersion != nil || !rc.CurrentVersionChangedTime.IsZero() || rc.RampingVersion != nil ||
		d.Info.ManagerIdentity != "" {
		return false, false, nil
	}
	listed := false
	for _, v := range d.Info.VersionSummaries {
		listed = listed || v.Version.BuildID == buildID
	}
	if !listed {
		return false, true, nil
	}
	_, err = h.SetCurrentVersion(ctx, client.WorkerDeploymentSetCurrentVersionOptions{
		BuildID: buildID, ConflictToken: d.ConflictToken,
	})
	var failed *serviceerror.FailedPrecondition
	switch {
	case err == nil:
		return true, false, nil
	case errors.As(err, &failed), errors.As(err, &notFound):
		// Changed since we read it (conflict token), or no pollers seen yet: read again.
		return false, true, err
	default:
		return false, false, fmt.Errorf("pool: make build %s current in worker deployment %s: %w", buildID, deployment, err)
	}
}

// setCurrentTimeout bounds Run's SetCurrentIfUnset: long enough for the server to list a
// new build, short enough not to act long after the worker started.
const setCurrentTimeout = 2 * time.Minute

// announceVersion logs the worker's build and, with Config.SetCurrentIfUnset, makes it the
// deployment's first current version, in the background; the channel closes when it is done.
func (p *Pool) announceVersion(ctx context.Context) <-chan struct{} {
	c, log := p.cfg, p.cfg.Logger.With("deployment", p.cfg.DeploymentName, "build_id", p.cfg.BuildID)
	log.Info("versioned worker: it gets the runs pinned to its build, and new and auto-upgrade runs while its build is the deployment's current version")
	done := make(chan struct{})
	if !c.SetCurrentIfUnset {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		sctx, cancel := context.WithTimeout(ctx, setCurrentTimeout)
		defer cancel()
		set, err := SetCurrentIfUnset(sctx, p.Client, c.DeploymentName, c.BuildID)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("could not make the build current; run `temporal worker deployment set-current-version`", "error", err)
		case set:
			log.Info("made the build the deployment's first current version")
		}
	}()
	return done
}
