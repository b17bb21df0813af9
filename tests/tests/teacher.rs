//! Teacher extraction against HF eager attention (fixture), and the memory bound of the
//! row capture.

use lavit_core::io::checkpoint::HostInputs;
use lavit_core::io::processor::load_rgb;
use lavit_core::io::{Checkpoint, Message};
use lavit_core::model::attention::{capture_counters, reset_capture_counter};
use lavit_core::teacher::{ExtractConfig, extract_signals};
use lavit_tests::{assert_close, fixture, reference, reference_meta};

fn inputs(name: &str, ckpt: &Checkpoint) -> HostInputs {
    let meta = reference_meta(name);
    let tok = ckpt.tokenizer(None).unwrap();
    let mut proc = ckpt.processor.clone();
    proc.min_pixels = meta["min_pixels"].as_u64().unwrap() as usize;
    proc.max_pixels = meta["max_pixels"].as_u64().unwrap() as usize;
    let img = load_rgb(&fixture(meta["image"].as_str().unwrap())).unwrap();
    let msgs = [Message::user_image_question(
        1,
        meta["question"].as_str().unwrap(),
    )];
    let mut host = HostInputs::build(&tok, &proc, &[img], &msgs, true).unwrap();
    host.input_ids
        .extend(tok.encode(meta["answer"].as_str().unwrap()).unwrap());
    host
}

#[test]
fn trajectory_and_vtop_match_hf_eager_attention() {
    let device = lavit_backends::select("cpu", 0).unwrap();
    for name in ["tiny-gqa", "tiny-tied"] {
        let r = reference(name);
        let ckpt = Checkpoint::open(&fixture(name)).unwrap();
        let teacher = ckpt.load(&device).unwrap();
        let host = inputs(name, &ckpt);
        let split: Vec<usize> = r["traj_step_split"]
            .to_i64()
            .iter()
            .map(|&v| v as usize)
            .collect();
        let spans = vec![split[0]..split[1], split[1]..split[2]];
        let sig = extract_signals(
            &teacher,
            &host,
            &spans,
            &ExtractConfig {
                layers: 2,
                top_k: 5,
            },
        )
        .unwrap();
        let ours: Vec<f32> = sig.traj.iter().flatten().copied().collect();
        assert_close(
            &format!("{name}: trajectory"),
            &ours,
            &r["traj_two_steps"].to_f32(),
            1e-4,
        );
        // V_top = pre-norm last layer at the image positions.
        let pre = r["last_layer_prenorm"].to_f32();
        let d = sig.d_teacher;
        let img: Vec<usize> = r["image_positions"]
            .to_i64()
            .iter()
            .map(|&v| v as usize)
            .collect();
        let want: Vec<f32> = img
            .iter()
            .flat_map(|&p| pre[p * d..(p + 1) * d].to_vec())
            .collect();
        assert_close(&format!("{name}: V_top"), &sig.vtop, &want, 1e-4);
        assert_eq!(sig.grid.0 * sig.grid.1, img.len());
        // Top-K indices point at the largest entries.
        for (m, k) in sig.traj.iter().zip(&sig.topk) {
            assert_eq!(k.len(), 5);
            let min_kept = k.iter().map(|&i| m[i]).fold(f32::INFINITY, f32::min);
            let larger = m.iter().filter(|&&v| v > min_kept).count();
            assert!(larger < 5);
        }
    }
}

/// Extraction holds only `layers × heads × rows × N_img` probabilities and computes score
/// blocks of `heads × rows × S` — never `heads × S × S` per layer.
#[test]
fn extraction_memory_is_rows_times_keys() {
    let device = lavit_backends::select("cpu", 0).unwrap();
    let name = "tiny-gqa";
    let r = reference(name);
    let ckpt = Checkpoint::open(&fixture(name)).unwrap();
    let teacher = ckpt.load(&device).unwrap();
    let host = inputs(name, &ckpt);
    let s = host.input_ids.len();
    let split: Vec<usize> = r["traj_step_split"]
        .to_i64()
        .iter()
        .map(|&v| v as usize)
        .collect();
    let rows = split[2] - split[0];
    let n_img = r["image_positions"].shape()[0];
    let layers = ckpt.config.text.num_hidden_layers;
    let heads = ckpt.config.text.num_attention_heads;
    reset_capture_counter();
    extract_signals(
        &teacher,
        &host,
        std::slice::from_ref(&(split[0]..split[2])),
        &ExtractConfig { layers, top_k: 4 },
    )
    .unwrap();
    let (captured, peak_block) = capture_counters();
    assert_eq!(captured, layers * heads * rows * n_img);
    assert_eq!(peak_block, heads * rows * s);
    assert!(
        peak_block * 4 < heads * s * s,
        "row capture is not smaller than full attention"
    );
}
