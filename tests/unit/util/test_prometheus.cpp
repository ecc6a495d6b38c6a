#include <catch2/catch.hpp>

#include "util/prometheus.h"

TEST_CASE("counters, gauges and histograms render in text format 0.0.4", "[prometheus]") {
  cd::prom::Registry r;
  r.counter("req_total", "Requests.");
  r.histogram("lat_seconds", "Latency.", {0.1, 1});
  r.gauge_fn("up", "Up.", [] { return 1.0; });
  r.inc("req_total", {{"route", "/predict"}, {"code", "200"}});
  r.inc("req_total", {{"route", "/predict"}, {"code", "200"}}, 2);
  r.observe("lat_seconds", {}, 0.05);
  r.observe("lat_seconds", {}, 0.5);
  r.observe("lat_seconds", {}, 5);
  CHECK(r.render() ==
        "# HELP req_total Requests.\n# TYPE req_total counter\n"
        "req_total{route=\"/predict\",code=\"200\"} 3\n"
        "# HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n"
        "lat_seconds_bucket{le=\"0.1\"} 1\nlat_seconds_bucket{le=\"1\"} "
        "2\nlat_seconds_bucket{le=\"+Inf\"} 3\n"
        "lat_seconds_sum 5.55\nlat_seconds_count 3\n"
        "# HELP up Up.\n# TYPE up gauge\nup 1\n");
}

TEST_CASE("label values are escaped", "[prometheus]") {
  CHECK(cd::prom::escape_label("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
  CHECK(cd::prom::format_value(0.005) == "0.005");
  CHECK(cd::prom::format_value(1.0 / 0.0) == "+Inf");
  cd::prom::Registry r;
  CHECK_THROWS(r.inc("never_registered"));
}
