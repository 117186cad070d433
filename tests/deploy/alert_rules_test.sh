#!/bin/sh
# The operators' alerting rules (deploy/alerts.yml): promtool checks them, runs their unit
# tests (deploy/alerts_test.yml) and checks that both Prometheus configurations load
# them. Usage: alert_rules_test.sh DEPLOY_DIR. Without promtool (Debian package
# prometheus, installed by scripts/install-deps.sh) the test is skipped (exit 77).
set -eu
if ! command -v promtool >/dev/null 2>&1; then
  echo "skipped: promtool not found; install Debian's prometheus package" \
    "(scripts/install-deps.sh) to test deploy/alerts.yml"
  exit 77
fi
cd "$1"
promtool check rules alerts.yml
promtool test rules alerts_test.yml
promtool check config prometheus.yml
promtool check config prometheus-compose.yml
