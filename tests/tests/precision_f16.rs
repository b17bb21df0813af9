//! f16 compute on the CPU backend against the HF (f32) fixture logits. Own test binary:
//! a device's float dtype is set once per process. Stated tolerance: max abs 3e-2 on logits
//! of |x| ≤ 4.4 (measured: f16 1.1e-2, bf16 7.7e-2).

use lavit_backends::{Precision, select_with_precision};
use lavit_core::io::Checkpoint;
use lavit_core::io::Message;
use lavit_core::io::checkpoint::HostInputs;
use lavit_core::io::processor::load_rgb;
use lavit_core::model::ForwardOptions;
use lavit_core::util::to_vec_f32;
use lavit_tests::{fixture, reference, reference_meta};

#[test]
fn f16_logits_close_to_hf() {
    let device = select_with_precision("cpu", 0, Precision::F16).unwrap();
    let name = "tiny-gqa";
    let meta = reference_meta(name);
    let ckpt = Checkpoint::open(&fixture(name)).unwrap();
    let model = ckpt.load(&device).unwrap();
    let tok = ckpt.tokenizer(None).unwrap();
    let img = load_rgb(&fixture(meta["image"].as_str().unwrap())).unwrap();
    let host = HostInputs::build(
        &tok,
        &ckpt.processor,
        &[img],
        &[Message::user_image_question(
            1,
            meta["question"].as_str().unwrap(),
        )],
        true,
    )
    .unwrap();
    let out = model
        .forward(&host.to_device(&device), ForwardOptions::default())
        .unwrap();
    let ours = to_vec_f32(out.logits.unwrap());
    let theirs = reference(name)["logits"].to_f32();
    let d = lavit_tests::max_abs_diff(&ours, &theirs[..ours.len()]);
    eprintln!("f16 logits: max abs error {d:e}");
    assert!(d <= 3e-2, "f16 logits differ by {d}");
}
