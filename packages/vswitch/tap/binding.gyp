{
  "targets": [
    {
      "target_name": "rz_tap",
      "sources": ["src/rz_tap.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
