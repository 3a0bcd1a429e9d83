# Switchboard. `make test` is the one command a newcomer and CI run: it installs and starts
# what the tests need (scripts/testenv.sh), then lints, tests with -race and fuzzes briefly.

GO ?= go

.PHONY: test lint unit fuzz testenv testenv-stop build run bench

## test: provide Redis, PostgreSQL, Chromium and staticcheck, then gofmt, vet, staticcheck, go test -race, fuzz
test:
	@bash scripts/test.sh all

## lint: gofmt check, go vet and staticcheck only
lint:
	@bash scripts/test.sh lint

## unit: provide the servers, then go test -race only
unit:
	@bash scripts/test.sh unit

## fuzz: the short fuzz pass only (SWITCHBOARD_FUZZTIME=10s)
fuzz:
	@bash scripts/test.sh fuzz

## testenv: print the test environment as export lines, for: eval "$$(make -s testenv)"
testenv:
	@bash scripts/testenv.sh

## testenv-stop: stop the throwaway Redis and PostgreSQL that testenv started
testenv-stop:
	@bash scripts/testenv-stop.sh

## build: build the server binary ./switchboard
build:
	$(GO) build -o switchboard ./cmd/switchboard

## run: run the server from source
run:
	$(GO) run ./cmd/switchboard

## bench: run every benchmark (no tests)
bench:
	$(GO) test -run='^$$' -bench=. ./...
