#pragma once
// Histogram bucket bounds, in seconds. They are placed around the bounds the probes promise
// (keep-alive idle + interval * count, user timeout, ping interval + timeout), so a dashboard
// can tell "found within the configured bound" from "found late" without interpolation guesses.

#include <vector>

namespace pgvigil::metrics::buckets {

// Last sign of life to eviction: from a failed checkout check (milliseconds) to a slow
// keep-alive sequence (minutes). Dense between 1 s and 15 s, where typical bounds sit.
inline const std::vector<double> kDetectionLatency{
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2,  3,   4,  5,
    6,     8,    10,    12,   15,  20,   30,  60, 120, 300};

// Application ping round trip on a healthy link is sub-millisecond on loopback and tens of
// milliseconds across regions; 5 s is the largest ping timeout worth distinguishing.
inline const std::vector<double> kPingLatency{
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5};

// Connect includes TCP, TLS and authentication; 10 s covers a connect_timeout at its limit.
inline const std::vector<double> kConnectLatency{
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

// Checkout wait is zero when an idle connection is ready and up to the checkout timeout
// (default tens of seconds) when the pool is exhausted.
inline const std::vector<double> kCheckoutWait{
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,    0.5,    1,     2.5,    5,     10,   20,    30};

}  // namespace pgvigil::metrics::buckets
