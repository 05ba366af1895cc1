// Command oldclient starts workflows and sends updates through the identity-sealing client
// of the release it is built with. The upgrade test copies it into a checkout of an earlier
// commit and builds it there, so that the runs it starts carry that release's envelopes.
//
// It reads one request as JSON on standard input (the token never appears on the command
// line) and writes one JSON answer on standard output: {"run_id": ...} for a start,
// {"result": ...} for an update, or {"error": ...}. It uses only interceptors.Dial, which
// every release has, and the Temporal SDK.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"time"

	"go.temporal.io/sdk/client"
	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/interceptors"
)

type request struct {
	Op         string          `json:"op"` // "start" or "update"
	Address    string          `json:"address"`
	Namespace  string          `json:"namespace"`
	PublicKey  string          `json:"public_key"`
	Token      token           `json:"token"`
	WorkflowID string          `json:"workflow_id"`
	TaskQueue  string          `json:"task_queue,omitempty"` // start
	Workflow   string          `json:"workflow,omitempty"`   // start: the workflow type
	Update     string          `json:"update,omitempty"`     // update: its name
	Arg        json.RawMessage `json:"arg"`
}

type token struct {
	AccessToken  string    `json:"access_token"`
	IDToken      string    `json:"id_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry"`
}

type answer struct {
	RunID  string          `json:"run_id,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

func main() {
	a, err := run()
	if err != nil {
		a = answer{Error: err.Error()}
	}
	_ = json.NewEncoder(os.Stdout).Encode(a)
	if err != nil {
		os.Exit(1)
	}
}

func run() (answer, error) {
	var req request
	dec := json.NewDecoder(os.Stdin)
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		return answer{}, err
	}
	var arg any
	if len(req.Arg) > 0 {
		d := json.NewDecoder(bytes.NewReader(req.Arg))
		d.UseNumber()
		if err := d.Decode(&arg); err != nil {
			return answer{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tok := (&oauth2.Token{AccessToken: req.Token.AccessToken, RefreshToken: req.Token.RefreshToken,
		TokenType: "Bearer", Expiry: req.Token.Expiry}).WithExtra(map[string]any{"id_token": req.Token.IDToken})
	c, err := interceptors.Dial(ctx, interceptors.DialOptions{
		Client:      client.Options{HostPort: req.Address, Namespace: req.Namespace},
		TokenSource: oauth2.StaticTokenSource(tok),
		PublicKey:   req.PublicKey,
	})
	if err != nil {
		return answer{}, err
	}
	defer c.Close()
	switch req.Op {
	case "start":
		r, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: req.WorkflowID, TaskQueue: req.TaskQueue}, req.Workflow, arg)
		if err != nil {
			return answer{}, err
		}
		return answer{RunID: r.GetRunID()}, nil
	case "update":
		h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: req.WorkflowID, UpdateName: req.Update,
			Args: []any{arg}, WaitForStage: client.WorkflowUpdateStageCompleted})
		if err != nil {
			return answer{}, err
		}
		var out json.RawMessage
		if err := h.Get(ctx, &out); err != nil {
			return answer{}, err
		}
		return answer{Result: out}, nil
	}
	return answer{}, errors.New("oldclient: op is start or update")
}
