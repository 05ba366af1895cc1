package workflows

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/activities"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/pgaccess"
)

// TestAccessRequestAgainstPostgres runs the workflow (time-skipping) with the real database
// activities: the role exists while granted and is gone after the duration.
func TestAccessRequestAgainstPostgres(t *testing.T) {
	url := os.Getenv("OIDCFLOW_POSTGRES_URL")
	if url == "" {
		url = testharness.Load(t).Env("OIDCFLOW_POSTGRES_URL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, pgaccess.Bootstrap(ctx, url, pgaccess.BootstrapOptions{}))
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()

	env := newTestEnv()
	env.SetWorkerOptions(testWorkerOptions("bob"))
	env.RegisterWorkflowWithOptions(AccessRequest, workflow.RegisterOptions{Name: AccessRequestWorkflow})
	env.RegisterActivity(&activities.DatabaseActivities{DB: pool})
	env.RegisterActivity(&activities.NotifyActivities{})
	env.OnActivity(notifyAct.Notify, mock.Anything, mock.Anything).Return(activities.NotifyResult{}, nil).Maybe()

	workflowID := "it-access-" + time.Now().Format("150405.000000000")
	env.SetStartWorkflowOptions(startOptions(workflowID))
	role := pgaccess.RoleName(workflowID, "bob")
	exists := func() bool {
		var n int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", role).Scan(&n))
		return n == 1
	}
	send(env, time.Minute, UpdateApprove, "approve-carol", approveSeen(t, env, ""))
	var during bool
	env.RegisterDelayedCallback(func() { during = exists() }, 2*time.Minute)
	env.ExecuteWorkflow(AccessRequest, readDemo(2*time.Minute))

	res := result(t, env)
	require.Equal(t, StateEnded, res.State)
	require.Equal(t, role, res.Grant.RoleName)
	require.True(t, during, "the role exists while granted")
	require.False(t, exists(), "the role is gone after the duration")
}
