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
    args = parser.parse_args()

    import kubernetes  # imported here so its import time is not measured with the stream

    configuration = kubernetes.client.Configuration()
    configuration.host = args.server
    if args.ca_file:
        configuration.ssl_ca_cert = args.ca_file
    api = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(configuration))
    watch = kubernetes.watch.Watch()

    first_rv = args.first_rv
    last_rv = args.first_rv + args.events - 1
    received = lost = repeated = 0
    highest = None
    gaps = []
    last_event_at = None
    rss_at_checkpoint = None
    finished = None

    cpu_at_start = cpu_seconds()
    started = time.monotonic()
    for event in watch.stream(
        api.list_pod_for_all_namespaces, resource_version=str(first_rv - 1)
    ):
        rv = int(event["object"].metadata.resource_version)
        received += 1
        expected_next = first_rv if highest is None else highest + 1
        if rv < expected_next:
            repeated += 1
        else:
            lost += rv - expected_next
            highest = rv
        if args.gap_every:
            now = time.monotonic()
            index = rv - first_rv
            if last_event_at is not None and index > 0 and index % args.gap_every == 0:
                gaps.append(now - last_event_at)
            last_event_at = now
        if args.checkpoint is not None and received == args.checkpoint:
            rss_at_checkpoint = peak_rss_bytes()
        if highest is not None and highest >= last_rv:
            finished = time.monotonic()
            break
        if args.pace_every and received % args.pace_every == 0:
            time.sleep((args.pace_sleep_us or 0) / 1e6)
    if finished is None:
        finished = time.monotonic()
    cpu_at_finish = cpu_seconds()
    watch.stop()

    never_reached = last_rv - (highest if highest is not None else first_rv - 1)
    report = {
        "consumer": args.consumer,
        "events": received,
        "seconds": finished - started,
        "cpu_seconds": max(0.0, cpu_at_finish - cpu_at_start),
        "peak_rss_bytes": peak_rss_bytes(),
        "last_rv": highest,
        "lost": lost + max(0, never_reached),
        "repeated": repeated,
        "gap_ms": statistics.median(gaps) * 1e3 if gaps else None,
        "gaps": len(gaps),
        "peak_rss_at_checkpoint_bytes": rss_at_checkpoint,
        "connections": None,
    }
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
    if highest is None or highest < last_rv:
        sys.stderr.write(f"the stream ended after {received} of {args.events} events\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
