#!/bin/sh
# Stand-ins for nvidia-smi and nvcc replaying output captured on an H100 host (Driver 580.159.04, CUDA 13.0,
# nvcc 13.0). FAKE_GPU_DIR holds the captures; NVCC_RELEASE rewrites nvcc's release for negative tests.
dir=$(dirname "$0")
case "$(basename "$0")" in
  nvcc) sed "s/release 13.0/release ${NVCC_RELEASE:-13.0}/" "$dir/nvcc-version.txt" ;;
  *) case "$*" in
       *--query-gpu*) cat "$dir/nvidia-smi-query.txt" ;;
       *) cat "$dir/nvidia-smi-banner.txt" ;;
     esac ;;
esac
