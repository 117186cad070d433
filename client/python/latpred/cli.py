"""``python -m latpred``: the common commands of the C++ ``latpred`` CLI, in Python.

Commands, flags, tables and exit statuses follow client/cli (``latpred --help``):
devices, device, predict, suggest, submit, adapt, health and info. ``--json`` prints
the fields of the API (proto field names; enum values by their proto names).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from dataclasses import asdict
from typing import Any, Dict, List, Optional, Sequence, TextIO

from . import __version__
from .client import Client
from .datatypes import AdaptResult, Device, FitStats, ModelState, Prediction, SubmitResult
from .errors import LatpredError, NoInterval

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

DESCRIPTION = """\
latpred: predicts the latency of neural networks on barely-seen devices.
The Python twin of the C++ `latpred` CLI (the same commands, flags and output).

example: measure a new device, adapt, predict
  python -m latpred suggest --device orin_nano --space nb201 -k 10 > to_measure.txt
  python -m latpred submit --device orin_nano --space nb201 measured.csv
  python -m latpred adapt --device orin_nano --space nb201
  python -m latpred predict --device orin_nano --space nb201 --file candidates.txt

SPACE is nb201 or fbnet; a FILE '-' reads stdin. The token for the calls that write
comes from $LATPRED_TOKEN_FILE or $LATPRED_TOKEN, never from the command line.
Exit status: 0 success, 1 the command failed, 2 usage error.
Run 'python -m latpred COMMAND --help' for the flags and details of a command."""


class UsageError(Exception):
    """A mistake on the command line: exit status 2."""


def _global_flags(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """--server, --ca, --json, --timeout: before the command, or after it (suppress: the
    subcommand's copy keeps what was given before the command unless given again)."""
    default = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    group = parser.add_argument_group("global flags (before or after the command)")
    group.add_argument("--server", metavar="HOST:PORT", default=default("127.0.0.1:50051"),
                       help="server address (default 127.0.0.1:50051)")
    group.add_argument("--json", action="store_true", default=default(False),
                       help="print JSON instead of tables")
    group.add_argument("--ca", metavar="FILE", default=default(None),
                       help="CA certificate (PEM) of a TLS server")
    group.add_argument("--timeout", metavar="SECONDS", type=float, default=default(60.0),
                       help="deadline of each call, its retries included (default 60)")


def _device_space(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", metavar="NAME", required=True, help="the device")
    parser.add_argument("--space", metavar="SPACE", required=True,
                        help="the search space: nb201 or fbnet")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m latpred", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"latpred {__version__}")
    _global_flags(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    def command(name: str, summary: str, details: str, example: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=summary, description=f"{summary}\n\n{details}",
            epilog=f"example:\n  python -m latpred {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter)
        _global_flags(sub, suppress=True)
        return sub

    sub = command("devices", "List devices with their samples and model per space.",
                  "Lists every device the server knows: the bundled source devices the base\n"
                  "models were trained on and the registered ones. SPACES shows\n"
                  "space:samples:state:vN.", "devices --registered")
    sub.add_argument("--registered", action="store_true",
                     help="leave out the bundled source devices")

    sub = command("device", "Show one device: labels, descriptor and models.",
                  "Its labels, descriptor features and, per space, samples, model and fit.",
                  "device pixel2")
    sub.add_argument("name", metavar="NAME")

    sub = command("predict", "Predict latency_ms of architectures on a device.",
                  "Architectures come from the arguments, from --file (one per line, '#'\n"
                  "comments) or from stdin; in nb201 an integer is a NAS-Bench-201 index\n"
                  "(0..15624). They are sent in batches of the server's max_batch. Prints each\n"
                  "architecture's predicted latency and the model used: vN (adapted,\n"
                  "zero-shot or source).\n\n"
                  "--interval 0.8 also prints bounds that hold 80% of the device's latencies\n"
                  "(its 10th and 90th percentiles). A model with fewer than 3 samples, a\n"
                  "zero-shot one and a source device's have no interval: the predictions\n"
                  "alone are printed and stderr says so.",
                  "predict --device pixel3 --space nb201 0 1 2")
    _device_space(sub)
    sub.add_argument("archs", metavar="ARCH", nargs="*", help="architectures (or --file)")
    sub.add_argument("--file", metavar="FILE", help="architectures, one per line ('-' = stdin)")
    sub.add_argument("--interval", metavar="SHARE", type=float,
                     help="also print bounds holding this share of latencies (0 < SHARE < 1)")

    sub = command("submit", "Store measured latencies of a device.",
                  "FILE.csv ('-' = stdin) has a header naming the columns arch and latency_ms,\n"
                  "and optionally repeats and spread_ms (ms). The batch is all or nothing\n"
                  "unless --partial, which stores the valid rows and lists the rejected ones.\n"
                  "The batch goes with a request id (random unless --request-id) and is sent\n"
                  "up to 3 times while the server answers UNAVAILABLE; the server stores it\n"
                  "once. To rerun a failed submit safely, pass the same --request-id.",
                  "submit --device orin_nano --space nb201 measured.csv")
    _device_space(sub)
    sub.add_argument("file", metavar="FILE.csv")
    sub.add_argument("--partial", action="store_true",
                     help="store the valid rows even when some are rejected")
    sub.add_argument("--request-id", metavar="ID", help="the batch's request id")

    sub = command("suggest", "The N architectures most worth measuring next (default 10).",
                  "Prints one architecture per line, ready to measure and submit.",
                  "suggest --device orin_nano --space nb201 -k 20 > to_measure.txt")
    _device_space(sub)
    sub.add_argument("-k", metavar="N", type=int, default=10,
                     help="how many architectures (default 10)")

    sub = command("adapt", "Fit the device's predictor from its samples.",
                  "Fits (or refits) the device's predictor for the space and prints the new\n"
                  "model version with its fit statistics.",
                  "adapt --device orin_nano --space nb201")
    _device_space(sub)
    sub.add_argument("--no-wait", action="store_true",
                     help="return at once; the fit runs in the background")

    command("health", "Print SERVING or NOT_SERVING; exit 0 only when SERVING.", "",
            "health")
    command("info", "Server version, search spaces and limits.", "", "info")
    return parser


# -- output -----------------------------------------------------------------------

def table(rows: Sequence[Sequence[str]], indent: str = "") -> str:
    """Columns padded as the C++ CLI's FormatTable: two spaces apart, the last unpadded."""
    widths = [max(len(row[i]) for row in rows if i < len(row))
              for i in range(max(len(r) for r in rows))]
    lines = []
    for row in rows:
        cells = [cell if i + 1 == len(row) else cell.ljust(widths[i] + 2)
                 for i, cell in enumerate(row)]
        lines.append(indent + "".join(cells))
    return "\n".join(lines) + "\n"


def state_name(state: ModelState) -> str:
    return state.value.replace("_", "-")


def _loo_log_sd(value: float) -> str:
    return f"{value:.3f}" if value > 0 else "-"


def _fit_summary(fit: FitStats) -> str:
    out = (f"{fit.samples} samples, spearman {fit.fit_spearman:.3f}, MAPE {fit.fit_mape:.2f}%, "
           f"LOO MAPE {fit.loo_mape:.2f}%, LOO log sd {_loo_log_sd(fit.loo_log_sd)}, "
           f"{fit.seconds:.2f} s")
    if fit.descriptor_weight > 0:
        out += f", descriptor weight {fit.descriptor_weight:.2f}"
    if fit.set_aside:
        out += ", set aside as glitches: " + " ".join(fit.set_aside)
    return out


def _labels(device: Device) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(device.labels.items())) or "-"


def _json_value(value: Any) -> Any:
    """Dataclass fields as the API's JSON: enums by their proto names."""
    if isinstance(value, ModelState):
        return "MODEL_STATE_" + value.name
    if hasattr(value, "name") and type(value).__name__ == "FeatureSource":
        return "FEATURE_SOURCE_" + value.name
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


def device_json(device: Device) -> Dict[str, Any]:
    out = _json_value(asdict(device))
    out["spaces"] = list(out["spaces"].values())  # a list, as in the API
    return out


def print_json(value: Any, out: TextIO) -> None:
    out.write(json.dumps(value, indent=2) + "\n")


# -- commands ---------------------------------------------------------------------

def read_text(path: str, stdin: TextIO) -> str:
    if path == "-":
        return stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise LatpredError(f"cannot read {path}: {e.strerror}") from None


def arch_list(text: str) -> List[str]:
    """One architecture per line; blank lines and '#' comments skipped."""
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def _archs(args: argparse.Namespace, stdin: TextIO) -> List[Any]:
    if args.archs and args.file is not None:
        raise UsageError("give architectures as arguments or --file, not both")
    archs = args.archs or arch_list(read_text(args.file or "-", stdin))
    if not archs:
        raise UsageError("no architectures: give them as arguments, with --file or on stdin")
    # In nb201 an integer is a NAS-Bench-201 index; the client resolves it.
    return [int(a) if args.space == "nb201" and a.isdigit() else a for a in archs]


def run_predict(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO,
                stdin: TextIO) -> None:
    archs = _archs(args, stdin)
    if args.interval is not None and not 0 < args.interval < 1:
        raise UsageError(f"--interval wants a share strictly between 0 and 1, got "
                         f"{args.interval:g}")
    result: Prediction = client.predict(args.device, args.space, archs, return_details=True,
                                        interval=args.interval)
    names = client._archs(args.space, archs)  # the spelling sent (indices resolved)
    bounds = bool(result.lower_ms)
    if args.interval is not None and not bounds:
        err.write("latpred: predict: no interval: " + (
            "a source device's model has no leave-one-out errors to size one\n"
            if result.state is ModelState.SOURCE
            else "the device's model has fewer than 3 samples or is zero-shot\n"))
    if args.json:
        items = []
        for i, arch in enumerate(names):
            item: Dict[str, Any] = {"arch": arch, "latency_ms": result.latency_ms[i]}
            if bounds:
                item.update(lower_ms=result.lower_ms[i], upper_ms=result.upper_ms[i])
            items.append(item)
        doc: Dict[str, Any] = {"device": args.device, "space": args.space,
                               "model_version": result.model_version,
                               "zero_shot": result.zero_shot,
                               "state": "MODEL_STATE_" + result.state.name}
        if bounds:
            doc["interval"] = args.interval
        doc["predictions"] = items
        print_json(doc, out)
        return
    rows = [["ARCH", "LATENCY_MS"] + (["LOWER_MS", "UPPER_MS"] if bounds else [])]
    for i, arch in enumerate(names):
        row = [arch, f"{result.latency_ms[i]:.4f}"]
        if bounds:
            row += [f"{result.lower_ms[i]:.4f}", f"{result.upper_ms[i]:.4f}"]
        rows.append(row)
    model = f"model v{result.model_version} ({state_name(result.state)})"
    if bounds:
        tail = 50 * (1 - args.interval)
        model += f"; {100 * args.interval:g}% interval: percentiles {tail:g} to {100 - tail:g}"
    out.write(table(rows) + model + "\n")


def run_devices(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    devices = client.devices(registered_only=args.registered)
    if args.json:
        print_json({"devices": [device_json(d) for d in devices], "next_page_token": ""}, out)
        return
    rows = [["NAME", "SOURCE", "SPACES", "LABELS"]]
    for d in devices:
        spaces = " ".join(f"{s.space}:{s.sample_count}:{state_name(s.state)}:v{s.model_version}"
                          for s in d.spaces.values()) or "-"
        rows.append([d.name, "yes" if d.source else "no", spaces, _labels(d)])
    out.write(table(rows))


def run_device(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    device = client.device(args.name)
    if args.json:
        print_json(device_json(device), out)
        return
    import datetime

    def when(ms: int) -> str:
        if not ms:
            return "-"
        moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")

    features = table([["NAME", "VALUE", "SOURCE", "UNIT"]] + [
        [f.name, f"{f.value:g}", f.source.value, f.unit or "-"] for f in device.features],
        "  ") if device.features else "  (none)\n"
    spaces = table([["SPACE", "SAMPLES", "STATE", "MODEL", "FIT"]] + [
        [s.space, str(s.sample_count), state_name(s.state), f"v{s.model_version}",
         _fit_summary(s.fit) if s.fit is not None and s.fit.samples > 0 else "-"]
        for s in device.spaces.values()], "  ") if device.spaces else "  (none)\n"
    out.write(f"name:     {device.name}\n"
              f"kind:     {'source (bundled)' if device.source else 'registered'}\n"
              f"created:  {when(device.created_unix_ms)}\n"
              f"updated:  {when(device.updated_unix_ms)}\n"
              f"labels:   {_labels(device)}\nfeatures:\n{features}spaces:\n{spaces}")


def read_samples(text: str, source: str) -> List[Dict[str, Any]]:
    """The rows of a samples CSV (columns arch, latency_ms[, repeats, spread_ms])."""
    reader = csv.DictReader(io.StringIO(text))
    fields = set(reader.fieldnames or [])
    if not {"arch", "latency_ms"} <= fields:
        raise LatpredError(f"{source}: the header must name the columns arch and latency_ms "
                           "(optional: repeats, spread_ms)")
    samples = []
    for line, row in enumerate(reader, start=2):
        try:
            sample: Dict[str, Any] = {"arch": row["arch"].strip(),
                                      "latency_ms": float(row["latency_ms"])}
            if row.get("repeats"):
                sample["repeats"] = int(row["repeats"])
            if row.get("spread_ms"):
                sample["spread_ms"] = float(row["spread_ms"])
        except (TypeError, ValueError, AttributeError):
            raise LatpredError(f"{source}: line {line}: cannot read {row}") from None
        samples.append(sample)
    if not samples:
        raise LatpredError(f"{source}: no samples")
    return samples


def run_submit(client: Client, args: argparse.Namespace, out: TextIO, stdin: TextIO) -> None:
    source = "stdin" if args.file == "-" else args.file
    samples = read_samples(read_text(args.file, stdin), source)
    result: SubmitResult = client.submit(args.device, args.space, samples, partial=args.partial,
                                         request_id=args.request_id)
    if args.json:
        print_json(asdict(result), out)
        return
    if result.rejected > 0:
        rows = [["LINE", "ARCH", "RESULT", "ERROR"]]
        for r in result.results:
            known = 0 <= r.index < len(samples)
            rows.append([str(r.index + 2) if known else "?",
                         r.canonical_arch or (samples[r.index]["arch"] if known else "?"),
                         "accepted" if r.accepted else "rejected", r.error or "-"])
        out.write(table(rows))
    if result.replayed:
        out.write(f"request id {args.request_id} was stored by an earlier submit; nothing "
                  "stored again\n")
    out.write(f"accepted {result.accepted}, rejected {result.rejected}; {result.sample_count} "
              f"samples stored for {args.device}/{args.space}\n")


def run_suggest(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    if args.k <= 0:
        raise UsageError(f"-k wants a positive integer, got '{args.k}'")
    archs = client.suggest(args.device, args.space, args.k)
    if args.json:
        print_json({"archs": archs}, out)
        return
    out.write("".join(a + "\n" for a in archs))


def run_adapt(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    result: AdaptResult = client.adapt(args.device, args.space, wait=not args.no_wait)
    if args.json:
        doc = _json_value(asdict(result))
        doc["state"] = "MODEL_STATE_" + result.state.name
        print_json(doc, out)
        return
    if result.pending:
        out.write(f"fit of {args.device}/{args.space} running in the background; serving model "
                  f"v{result.model_version} ({state_name(result.state)}) until it finishes\n")
        return
    fit = result.fit if result.fit is not None else FitStats(0, 0.0, 0.0, 0.0, 0.0)
    out.write(f"model:         v{result.model_version} ({state_name(result.state)})\n"
              f"samples:       {fit.samples}\n"
              f"fit spearman:  {fit.fit_spearman:.3f}\n"
              f"fit MAPE:      {fit.fit_mape:.2f}%\n"
              f"LOO MAPE:      {fit.loo_mape:.2f}%\n"
              f"LOO log sd:    {_loo_log_sd(fit.loo_log_sd)}\n"
              f"descriptor:    {fit.descriptor_weight:.2f} of the head\n"
              f"seconds:       {fit.seconds:.2f}\n")
    if fit.set_aside:
        out.write(f"set aside:     {' '.join(fit.set_aside)} (likely glitches: measure them "
                  "again)\n")


def main(argv: Optional[Sequence[str]] = None, out: TextIO = sys.stdout,
         err: TextIO = sys.stderr, stdin: TextIO = sys.stdin) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 with a usage message on a bad command line
    if not args.timeout > 0:
        parser.error(f"--timeout wants a positive number of seconds, got '{args.timeout:g}'")
    try:
        with Client(args.server, ca=args.ca, timeout=args.timeout) as client:
            if args.command == "predict":
                run_predict(client, args, out, err, stdin)
            elif args.command == "devices":
                run_devices(client, args, out)
            elif args.command == "device":
                run_device(client, args, out)
            elif args.command == "submit":
                run_submit(client, args, out, stdin)
            elif args.command == "suggest":
                run_suggest(client, args, out)
            elif args.command == "adapt":
                run_adapt(client, args, out)
            elif args.command == "health":
                status = client.health()
                out.write(status + "\n")
                return EXIT_OK if status == "SERVING" else EXIT_FAILED
            elif args.command == "info":
                info = client.server_info()
                if args.json:
                    print_json(asdict(info), out)
                else:
                    out.write(f"version:    {info.version}\nspaces:     "
                              f"{' '.join(info.spaces)}\nmax batch:  {info.max_batch}\n"
                              f"ready:      {'yes' if info.ready else 'no'}\n")
    except UsageError as e:
        err.write(f"latpred: {args.command}: {e}\n")
        err.write(f"Run 'python -m latpred {args.command} --help' for details.\n")
        return EXIT_USAGE
    except NoInterval as e:  # pragma: no cover - predict prints its own note instead
        err.write(f"latpred: {args.command}: {e}\n")
        return EXIT_FAILED
    except LatpredError as e:
        err.write(f"latpred: {args.command}: {e.code.name}: {e.message}\n")
        return EXIT_FAILED
    except (OSError, ValueError) as e:
        err.write(f"latpred: {args.command}: {e}\n")
        return EXIT_FAILED
    return EXIT_OK
