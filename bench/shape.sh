# Sourced by bench/run.sh and bench/gpu.sh: the config.json of a `lavit bench --config` name.
shape_config() {
  case "$1" in
    tiny) echo assets/synthetic/student-config.json ;;
    small) echo bench/configs/small.json ;;
    qwen2.5-vl-*) echo "assets/configs/$1.json" ;;
    *) echo "$1" ;;
  esac
}
