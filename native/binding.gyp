{
  # LIBTORCH: root of an unpacked official libtorch distribution (include/, lib/).
  # Unset (or empty), the Debian package's headers and libraries under /usr are used.
  "variables": {
    "libtorch%": "<!(node -p \"process.env.LIBTORCH || ''\")"
  },
  "targets": [
    {
      "target_name": "deltatune_native",
      "sources": ["src/addon.cc", "src/ops.cc", "src/tensor.cc", "src/frozen.cc", "src/fused.cc", "src/allocator.cc", "src/profiler.cc", "src/random.cc", "src/dist.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      # USE_C10D_GLOO: ProcessGroupGloo.hpp is empty without it (dist.cc). Its gloo headers come from
      # Debian's libgloo-dev (/usr/include/gloo, on the default include path in both branches below).
      "defines": ["NAPI_VERSION=8", "USE_C10D_GLOO", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "-fopenmp", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      # libtorch's header-only at::parallel_for is an OpenMP pragma in this build (AT_PARALLEL_OPENMP).
      "ldflags": ["-fopenmp"],
      "conditions": [
        ["libtorch==''", {
          "include_dirs": ["/usr/include", "/usr/include/torch/csrc/api/include"],
          "libraries": ["-ltorch", "-ltorch_cpu", "-lc10"]
        }, {
          "include_dirs": ["<(libtorch)/include", "<(libtorch)/include/torch/csrc/api/include"],
          "libraries": ["-L<(libtorch)/lib", "-Wl,-rpath,<(libtorch)/lib", "-ltorch", "-ltorch_cpu", "-lc10"]
        }]
      ]
    }
  ]
}
