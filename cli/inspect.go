package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/natsconn"
	"github.com/jettrain/jettrain/objstore"
	"github.com/jettrain/jettrain/protocol"
)

// ErrNoRun means the command needs a RUN argument: there is no run, or more
// than one.
var ErrNoRun = errors.New("cli: name a run")

type readFlags struct {
	endpoints
	json bool
}

// readCommand builds status, history and inspect: they open the object store
// only (an embedded one on a free port when no --s3 is given) and print.
func readCommand(use, short string, do func(ctx context.Context, w io.Writer, st *objstore.Store, runs []string, asJSON bool) error) (*cobra.Command, *endpoints) {
	f := &readFlags{}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			svc, err := f.open(ctx, "coordinator-"+cmd.Name(), false, true, "127.0.0.1:0")
			if err != nil {
				return err
			}
			defer svc.Close()
			runs := args
			if len(runs) == 0 {
				if runs, err = svc.store.Runs(ctx); err != nil {
					return err
				}
			}
			return do(ctx, cmd.OutOrStdout(), svc.store, runs, f.json)
		},
	}
	f.endpoints.flags(cmd.Flags(), false)
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON")
	return cmd, &f.endpoints
}

func oneRun(runs []string) (string, error) {
	switch len(runs) {
	case 1:
		return runs[0], nil
	case 0:
		return "", fmt.Errorf("%w: there are no runs in the bucket", ErrNoRun)
	}
	return "", fmt.Errorf("%w: there are %d runs (%v)", ErrNoRun, len(runs), runs)
}

// Inspection is what `coordinator inspect --json` prints.
type Inspection struct {
	Run           string          `json:"run"`
	Step          uint64          `json:"step"`
	Epoch         int             `json:"epoch"`
	WeightsSHA256 string          `json:"weights_sha256"`
	HistoryLen    int             `json:"history_len"`
	Checkpoint    string          `json:"checkpoint"`
	GradsSeq      uint64          `json:"grads_seq"`
	Config        json.RawMessage `json:"config,omitempty"`
}

func inspectCommand() *cobra.Command {
	cmd, _ := readCommand("inspect [RUN]", "Show a run's committed checkpoint", func(ctx context.Context, w io.Writer, st *objstore.Store, runs []string, asJSON bool) error {
		run, err := oneRun(runs)
		if err != nil {
			return err
		}
		m, err := st.Manifest(ctx, run)
		if err != nil {
			return err
		}
		in := Inspection{Run: run, Step: m.Step, Epoch: m.Epoch, WeightsSHA256: m.WeightsSHA256, HistoryLen: m.HistoryLen, Checkpoint: m.Key, GradsSeq: m.GradsSeq}
		if cfg, err := st.GetConfig(ctx, run); err == nil && json.Valid(cfg) {
			in.Config = cfg
		}
		if asJSON {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(in)
		}
		fmt.Fprintf(w, "run %s\nstep %d (epoch %d)\nweights sha256 %s\ncheckpoint %s (grads seq %d)\nhistory %d epochs\nconfig %s\n",
			in.Run, in.Step, in.Epoch, in.WeightsSHA256, in.Checkpoint, in.GradsSeq, in.HistoryLen, in.Config)
		return nil
	})
	return cmd
}

func historyCommand() *cobra.Command {
	cmd, _ := readCommand("history [RUN]", "Print a run's per-epoch history", func(ctx context.Context, w io.Writer, st *objstore.Store, runs []string, asJSON bool) error {
		run, err := oneRun(runs)
		if err != nil {
			return err
		}
		h, err := st.History(ctx, run)
		if err != nil {
			return err
		}
		if asJSON {
			return json.NewEncoder(w).Encode(h)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "epoch\tstep\ttrain_loss\ttrain_acc\tvalid_loss\tvalid_acc\tduration_s\tsamples/s\tbest\t")
		for _, e := range h {
			best := ""
			if e.Best {
				best = "*"
			}
			fmt.Fprintf(tw, "%d\t%d\t%.4f\t%.4f\t%.4f\t%.4f\t%.1f\t%.0f\t%s\t\n", e.Epoch, e.Step, e.TrainLoss, e.TrainAcc, e.ValidLoss, e.ValidAcc, e.DurationS, e.SamplesPerS, best)
		}
		return tw.Flush()
	})
	return cmd
}

// RunStatus is one row of `coordinator status --json`: the committed
// checkpoint from the object store and, when NATS is reachable, the live
// progress the leading coordinator reports.
type RunStatus struct {
	Run       string           `json:"run"`
	Step      uint64           `json:"step"`
	Epoch     int              `json:"epoch"`
	Epochs    int              `json:"epochs_done"`
	BestAcc   float64          `json:"best_valid_acc"`
	Committed bool             `json:"committed"`
	Live      *protocol.Status `json:"live,omitempty"`
}

func statusCommand() *cobra.Command {
	var live func(ctx context.Context, run string) *protocol.Status
	cmd, e := readCommand("status [RUN]", "List runs with their step, epoch, workers and best accuracy", func(ctx context.Context, w io.Writer, st *objstore.Store, runs []string, asJSON bool) error {
		var out []RunStatus
		for _, run := range runs {
			s := RunStatus{Run: run, Live: live(ctx, run)}
			if m, err := st.Manifest(ctx, run); err == nil {
				s.Step, s.Epoch, s.Epochs, s.Committed = m.Step, m.Epoch, m.HistoryLen, true
			} else if !errors.Is(err, objstore.ErrNotFound) {
				return err
			}
			if h, err := st.History(ctx, run); err == nil {
				for _, e := range h {
					s.BestAcc = max(s.BestAcc, e.ValidAcc)
				}
			}
			out = append(out, s)
		}
		if asJSON {
			return json.NewEncoder(w).Encode(out)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "RUN\tCOMMITTED STEP\tEPOCH\tEPOCHS DONE\tBEST VALID ACC\tLIVE STEP\tWORKERS\tLEADER")
		for _, s := range out {
			step, workers, leader := "-", "-", "-"
			if l := s.Live; l != nil {
				step, workers, leader = fmt.Sprint(l.Step), fmt.Sprint(l.Workers), l.Coordinator
				switch {
				case l.Recomputing:
					step += " (recomputing)"
				case l.Replaying:
					step += " (replaying)"
				}
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.4f\t%s\t%s\t%s\n", s.Run, s.Step, s.Epoch, s.Epochs, s.BestAcc, step, workers, leader)
		}
		return tw.Flush()
	})
	// Live progress needs NATS: --nats, NATS_URL or the embedded default.
	// Without it the committed state is all there is to show.
	live = func(ctx context.Context, run string) *protocol.Status {
		return liveStatus(ctx, e, run)
	}
	return cmd
}

// liveStatus reads run's live progress, or nil when NATS is not reachable
// or no coordinator reported in the last minute.
func liveStatus(ctx context.Context, e *endpoints, run string) *protocol.Status {
	o := e.natsOptions("coordinator-status")
	if o.URL == "" {
		o.URL = "nats://" + DefaultNATSListen
	}
	o.ConnectTimeout = time.Second
	o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	nc, err := natsconn.Connect(ctx, o)
	if err != nil {
		return nil
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil
	}
	kv, err := js.KeyValue(ctx, protocol.StatusBucket)
	if err != nil {
		return nil
	}
	entry, err := kv.Get(ctx, run)
	if err != nil {
		return nil
	}
	var s protocol.Status
	if json.Unmarshal(entry.Value(), &s) != nil || time.Since(time.UnixMilli(s.UnixMilli)) > time.Minute {
		return nil
	}
	return &s
}
