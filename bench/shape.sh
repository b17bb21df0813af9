# Sourced by bench/run.sh and bench/gpu.sh: the config.json of a `lavit bench --config` name.
shape_config() {
  case "$1" in
    tiny) echo assets/synthetic/student-config.json ;;
    small) echo bench/configs/small.json ;;
    # Qwen2.5-VL-3B's widths with the depth cut to 2 text layers and 8 vision blocks.
    3b-d2v8) echo bench/configs/qwen2.5-vl-3b-d2v8.json ;;
    qwen2.5-vl-*) echo "assets/configs/$1.json" ;;
    *) echo "$1" ;;
  esac
}
