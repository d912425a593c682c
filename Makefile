# Entry points for people and CI. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
SCENARIOS := $(sort $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml))))
SCENARIO ?= default
# ansible-lint reads the inventories' vaults with their committed demo and example passwords.
LINT_VAULT_IDS := demo@inventories/demo/demo-vault-password.txt,prod@inventories/prod/example-vault-password.txt,staging@inventories/staging/example-vault-password.txt

.PHONY: help demo demo-destroy bench test setup checks core-scenarios lint sanity unit molecule scenario converge verify destroy docs build clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

demo: setup ## Deploy the whole stack with the sample app to a throwaway local host
	ansible-playbook tests/demo/up.yml
	ansible-playbook site.yml -i inventories/demo
	@ip=$$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' algotrade-demo); \
	echo; \
	echo "The demo host 'algotrade-demo' (a local container, $$ip) runs the trading stack:"; \
	echo "TimescaleDB and the sample algo-trade daemon, built on the host from tests/sample-app."; \
	echo "  Web terminal (the bot TUI):  https://$$ip:7681/   user trader, password demo-tui-password-8d2e61c0f5"; \
	echo "     (a self-signed certificate made on the demo host: let your browser accept it once)"; \
	echo "  API on the demo host's loopback:  docker exec algotrade-demo curl -s http://127.0.0.1:8080/api/bots"; \
	echo "  Add a bot:  docker exec algotrade-demo curl -s -X POST -H 'Content-Type: application/json' -d '{\"bot_id\":\"demo\",\"symbol\":\"BTC\",\"strategy\":\"quad_ma\"}' http://127.0.0.1:8080/api/bots"; \
	echo "The demo passwords are in the demo vault (inventories/demo), for the demo only."; \
	echo "Remove it all with: make demo-destroy"

demo-destroy: setup ## Remove the throwaway demo host and its data
	ansible-playbook tests/demo/down.yml

bench: setup ## Measure deploy times on throwaway local hosts; writes docs/benchmarks.md (not part of test)
	python tools/bench.py

# Two lanes side by side (they share the two cores, busy throughout: docs/benchmarks.md):
# the checks one after another; and the scenarios three at a time, the longest first,
# where `default` takes the last free slot with ansible-core 2.21 and then 2.17 (the ends
# of requires_ansible) instead of the venv's 2.19, in one slot: a scenario's hosts and
# network have fixed names, so it must never run beside itself.
test: setup ## Set up everything and run every check and scenario
	$(MAKE) --no-print-directory -j2 --output-sync=target molecule checks \
	  SKIP_SCENARIOS=default LAST_SCENARIOS=$(CORE_SCENARIOS) SANITY_CORES="2.17 2.21"

checks: lint sanity unit ## lint, sanity and unit

setup: ## Install Debian packages, start Docker, build test images, create the venv
	tests/testbed/setup.sh all

lint: ## yamllint, ansible-lint (production), ruff, mypy, shellcheck, changelog fragments
	yamllint --strict .
	ANSIBLE_VAULT_IDENTITY_LIST=$(LINT_VAULT_IDS) ansible-lint --offline
	ruff check .
	ruff format --check .
	mypy tests tools plugins
	# One conftest.py per directory; the upgrade scenario imports the stack scenario's helpers.
	for d in molecule/*/tests; do MYPYPATH=molecule/stack/tests mypy "$$d"; done
	shellcheck tests/testbed/setup.sh tools/sanity.sh .ci/run tests/testbed/images/timescaledb/docker-entrypoint.sh \
	  scripts/vault-pass-client.sh molecule/backup/writer.sh tools/scenarios.sh tools/scenario-on-core.sh
	antsibull-changelog lint

# SANITY_CORES: those of the three to run (`make test`: the ends of requires_ansible).
SANITY_CORES ?=
sanity: ## ansible-test sanity on the built collection's files, with ansible-core 2.17, 2.19 and 2.21
	tools/sanity.sh $(SANITY_CORES)

unit: ## pytest: unit tests and role tests on throwaway hosts
	pytest tests

# `default` with the ends of requires_ansible, one after the other in one slot: both run
# even when the first fails; the target fails when either did.
CORE_SCENARIOS := default@2.21,2.17
core-scenarios: ## The default scenario with ansible-core 2.21 and 2.17 (tools/scenario-on-core.sh)
	tools/scenarios.sh $(CORE_SCENARIOS)

# The longest first: tools/scenarios.sh runs three at a time. SKIP_SCENARIOS: those that
# run elsewhere; LAST_SCENARIOS: more after them (`make test`: `default` with other cores).
SKIP_SCENARIOS ?=
LAST_SCENARIOS ?=
LONGEST := stack fleet upgrade backup
LONGEST_FIRST := $(foreach s,$(LONGEST),$(filter $(s),$(SCENARIOS))) $(filter-out $(LONGEST),$(SCENARIOS))

molecule: ## Run every Molecule scenario (create to destroy), three at a time
	tools/scenarios.sh $(filter-out $(SKIP_SCENARIOS),$(LONGEST_FIRST)) $(LAST_SCENARIOS)

scenario: ## One scenario: make scenario SCENARIO=default
	molecule test -s $(SCENARIO)

# The scenario's side effect too (stack: the next release; backup: the loss and restore):
# verify checks the state after it, as in `molecule test`.
converge: ## Converge one scenario, run its side effect and keep its instances: make converge SCENARIO=stack
	molecule converge -s $(SCENARIO)
	if [ -f molecule/$(SCENARIO)/side_effect.yml ]; then molecule side-effect -s $(SCENARIO); fi

verify: ## Verify kept instances of one scenario
	molecule verify -s $(SCENARIO)

destroy: ## Remove one scenario's instances
	molecule destroy -s $(SCENARIO)

# The collection's reference, written by antsibull-docs from the roles' argument specs and
# the plugins' documentation: simplified RST (the pinned antsibull-docs writes no Markdown),
# in one directory, which it empties of anything it did not write. --fail-on-error refuses
# a spec it cannot document; a role whose specs are not YAML, though, ansible-doc skips with
# a warning that antsibull-docs does not show: every role with specs must have its page.
# tests/unit/test_reference_docs.py runs this into a temporary DOCS_DIR and compares.
DOCS_DIR ?= docs/reference

docs: ## Regenerate the collection's reference (docs/reference/) with antsibull-docs
	mkdir -p $(DOCS_DIR)
	antsibull-docs --config-file .config/antsibull-docs.cfg collection --use-current \
	  --squash-hierarchy --output-format simplified-rst --fail-on-error --cleanup everything \
	  --dest-dir $(DOCS_DIR) algotrade.deploy
	for spec in roles/*/meta/argument_specs.yml; do \
	  role=$${spec#roles/}; role=$${role%%/*}; \
	  [ -f "$(DOCS_DIR)/$${role}_role.rst" ] || { \
	    echo "no page for role $$role: ansible-doc skipped it (ansible-doc -t role algotrade.deploy.$$role says why)" >&2; \
	    exit 1; }; \
	done

build: ## Build the collection tarball (what Galaxy would get)
	ansible-galaxy collection build --force --output-path build/

clean: ## Remove build output and caches (keeps the venv and images)
	rm -rf build .pytest_cache .ruff_cache .mypy_cache
