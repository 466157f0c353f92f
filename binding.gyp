{
  "targets": [
    {
      "target_name": "sd_notify",
      "sources": ["src/native/sd_notify.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    },
    {
      "target_name": "jpeg",
      "sources": ["src/native/jpeg.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "libraries": ["-ljpeg"],
      "ldflags": ["-Wl,-rpath,'$$ORIGIN'"]
    }
  ]
}
