# Thin front over CMake: `make demo` and `make test` are all a newcomer types.
.PHONY: all demo test build install clean bench

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

bench:
	UDR_SETUP_BENCH=1 sh scripts/setup.sh
	sh bench/run.sh

clean:
	rm -rf build build-asan build-release
