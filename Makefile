# Thin front over CMake: `make demo` and `make test` are all a newcomer types.
.PHONY: all demo test build install clean bench torture

all: build

demo:
	sh scripts/demo.sh

test:
	sh scripts/test.sh

build:
	sh scripts/setup.sh
	cmake -S . -B build -DUDR_FAULT_INJECTION=ON >/dev/null
	cmake --build build -j2

install:
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DUDR_BUILD_TESTS=OFF >/dev/null
	cmake --build build-release -j2
	cmake --install build-release
	@# the dynamic linker's cache, for programs linked without udr.pc's rpath
	-[ "$$(id -u)" -ne 0 ] || ldconfig

# long crash runs: 200 rounds of 8 committers killed at random (group commit);
# 200 gc runs among writers and readers (test_gc_concurrent);
# I/O faults at every step of puts into one growing store; a shared handle
# read by threads while other processes repack
torture: build
	cd build && UDR_TORTURE_ROUNDS=$${UDR_TORTURE_ROUNDS:-200} UDR_BIN=$$PWD/udr UDR_BUILD_DIR=$$PWD \
		UDR_FAULT_INJECTION=1 /usr/bin/python3 -m pytest -q -p no:cacheprovider ../tests/stress/test_group_commit.py ../tests/stress/test_branch_crash.py ../tests/stress/test_branch_sweep.py ../tests/stress/test_gc_concurrent.py
	@# kill -9 of gc at random moments, then a final gc reaches the uninterrupted run's result
	cd build && UDR_TORTURE_ROUNDS=$${UDR_TORTURE_ROUNDS:-200} UDR_BIN=$$PWD/udr UDR_BUILD_DIR=$$PWD \
		UDR_FAULT_INJECTION=1 /usr/bin/python3 -m pytest -q -p no:cacheprovider ../tests/cli/test_gc_collect.py -k kill_at_random
	@# every I/O step of every put fault loop, in one growing store (the larger repacks)
	cd build && UDR_FAULT_STRIDE=1 UDR_FAULT_GROW=1 ./tests/test_io_faults
	@# one handle, five threads, two processes repacking under it (a minute)
	cd build && UDR_PACK_THREADS_SECONDS=$${UDR_PACK_THREADS_SECONDS:-60} ./tests/test_pack_threads

bench:
	UDR_SETUP_BENCH=1 sh scripts/setup.sh
	sh bench/run.sh

clean:
	rm -rf build build-asan build-release
