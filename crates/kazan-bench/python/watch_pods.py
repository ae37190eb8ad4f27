"""The official Python client's watch.Watch as a kazan-bench consumer.

Takes the same flags as the Rust consumers (see crates/kazan-bench/src/job.rs), watches every pod
on --server from just before --first-rv, checks and times the events as the Rust sink does
(crates/kazan-bench/src/sink.rs), and prints one JSON report line. CPU seconds come from
getrusage(RUSAGE_SELF) and peak memory from VmHWM in /proc/self/status, as for the Rust consumers.
"""

import argparse
import json
import resource
import statistics
import sys
import time


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_bytes():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--consumer", default="python")
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--ca-file")
    parser.add_argument("--first-rv", type=int, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--gap-every", type=int)
    parser.add_argument("--pace-every", type=int)
    parser.add_argument("--pace-sleep-us", type=int)
    parser.add_argument("--checkpoint", type=int)
    parser.add_argument("--pod")
    parser.add_argument("--watches", type=int)
    parser.add_argument("--namespace-prefix")
    parser.add_argument("--sparse-rvs", action="store_true")
    args = parser.parse_args()
    if args.namespace_prefix is not None and (args.watches or 1) != 1:
        sys.stderr.write("the python consumer watches one namespace at most\n")
        sys.exit(2)

    import kubernetes  # imported here so its import time is not measured with the stream

    configuration = kubernetes.client.Configuration()
    configuration.host = args.server
    if args.ca_file:
        configuration.ssl_ca_cert = args.ca_file
    api = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(configuration))
    watch = kubernetes.watch.Watch()

    if args.namespace_prefix is not None:
        list_pods = api.list_namespaced_pod
        list_args = (args.namespace_prefix + "0",)
    else:
        list_pods = api.list_pod_for_all_namespaces
        list_args = ()

    first_rv = args.first_rv
    last_rv = args.first_rv + args.events - 1
    received = lost = repeated = 0
    highest = None
    gaps = []
    last_event_at = None
    rss_at_checkpoint = None
    finished = None
    finished_unix_s = None
    in_order = 0

    cpu_at_start = cpu_seconds()
    started = time.monotonic()
    for event in watch.stream(list_pods, *list_args, resource_version=str(first_rv - 1)):
        rv = int(event["object"].metadata.resource_version)
        received += 1
        expected_next = first_rv if highest is None else highest + 1
        if args.sparse_rvs:
            ordered = highest is None or rv > highest
        else:
            ordered = rv >= expected_next
        if not ordered:
            repeated += 1
        else:
            if not args.sparse_rvs:
                lost += rv - expected_next
            highest = rv
            in_order += 1
        if args.gap_every:
            now = time.monotonic()
            index = in_order - 1
            if last_event_at is not None and ordered and index > 0 and index % args.gap_every == 0:
                gaps.append(now - last_event_at)
            last_event_at = now
        if args.checkpoint is not None and received == args.checkpoint:
            rss_at_checkpoint = peak_rss_bytes()
        done = in_order >= args.events if args.sparse_rvs else highest >= last_rv
        if ordered and done:
            finished = time.monotonic()
            finished_unix_s = time.time()
            break
        if args.pace_every and received % args.pace_every == 0:
            time.sleep((args.pace_sleep_us or 0) / 1e6)
    if finished is None:
        finished = time.monotonic()
    cpu_at_finish = cpu_seconds()
    watch.stop()

    if args.sparse_rvs:
        missing = max(0, args.events - in_order)
    else:
        missing = lost + max(0, last_rv - (highest if highest is not None else first_rv - 1))
    report = {
        "consumer": args.consumer,
        "events": received,
        "seconds": finished - started,
        "cpu_seconds": max(0.0, cpu_at_finish - cpu_at_start),
        "peak_rss_bytes": peak_rss_bytes(),
        "last_rv": highest,
        "lost": missing,
        "repeated": repeated,
        "gap_ms": statistics.median(gaps) * 1e3 if gaps else None,
        "gaps": len(gaps),
        "peak_rss_at_checkpoint_bytes": rss_at_checkpoint,
        "finished_unix_s": finished_unix_s,
        "connections": None,
    }
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
    if finished_unix_s is None:
        sys.stderr.write(f"the stream ended after {received} of {args.events} events\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
