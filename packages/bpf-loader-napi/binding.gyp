{
  "targets": [
    {
      "target_name": "membrane_bpf",
      "sources": [
        "src/native/addon.cc",
        "src/native/object.cc",
        "src/native/maps.cc",
        "src/native/programs.cc",
        "src/native/ringbuf.cc",
        "src/native/probes.cc",
        "src/native/sockets.cc"
      ],
      "include_dirs": ["<!@(node -p \"require('node-addon-api').include\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "libraries": ["-lbpf", "-lelf", "-lz"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wno-missing-field-initializers"]
    }
  ]
}
