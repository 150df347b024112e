# lanekeeper's image: the one binary as ENTRYPOINT, also named kubectl-lanekeeper. The chart's
# controller runs it (`controller --kube`), and so do the Deployments the controller makes for
# each lane (`jobs supervisor`, `autopilot`). Handlers run inside the lane's supervisor pod: a
# lane whose handlers need more than sh and coreutils uses an image built FROM this one.
#
#   docker build -t registry.example/lanekeeper:0.1.0 .
#
# Two stages on Debian 12 slim: the builder has the build's packages (scripts/setup's, less
# those only tests use), the runtime only the shared libraries the binary links. KubeImage.*
# (tests/kube_image_test.cc) holds both lists to that; nothing on the development machine
# can build the image (no container engine there).

FROM debian:12-slim AS builder
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      build-essential cmake pkg-config \
      libcpprest-dev libssl-dev \
      libyaml-cpp-dev libhiredis-dev libspdlog-dev libfmt-dev \
      libcli11-dev nlohmann-json3-dev prometheus-cpp-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# What the lanekeeper target compiles, and nothing else: a change to tests or docs keeps the
# build's layer cached.
COPY CMakeLists.txt ./
COPY cmake cmake
COPY worker worker
COPY controller controller
COPY cmd cmd
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLANEKEEPER_TESTS=OFF -DLANEKEEPER_BENCH=OFF \
 && cmake --build build -j"$(nproc)" --target lanekeeper

FROM debian:12-slim
# The packages of the binary's shared libraries (ldd, then dpkg -S), one a line.
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      libbrotli1 \
      libc6 \
      libcpprest2.10 \
      libfmt9 \
      libgcc-s1 \
      libhiredis0.14 \
      libspdlog1.10 \
      libssl3 \
      libstdc++6 \
      libyaml-cpp0.7 \
      zlib1g \
 && rm -rf /var/lib/apt/lists/*
COPY --from=builder /src/build/lanekeeper /usr/local/bin/lanekeeper
# kubectl finds plugins on PATH by name; the binary acts as the plugin when run by that name.
# The user is nonroot (65532), as the chart's and the lanes' pods run; its home holds the
# supervisor's state where the root filesystem is writable.
RUN ln -s lanekeeper /usr/local/bin/kubectl-lanekeeper \
 && groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --create-home --home-dir /home/nonroot --shell /usr/sbin/nologin nonroot
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["lanekeeper"]
CMD ["--help"]
