//! The student bundle's input limits: an empty question, a prompt longer than the model's
//! positions and a mismatch between images and placeholders are clear errors, not answers.

use lavit_core::LavitError;
use lavit_core::bundle::ModelBundle;
use lavit_core::infer::GenerateConfig;
use lavit_core::io::Message;
use lavit_core::io::checkpoint::HostInputs;
use lavit_core::io::processor::load_rgb;
use lavit_tests::fixture;

fn prompt_error(r: lavit_core::Result<impl std::fmt::Debug>) -> String {
    match r {
        Err(e @ LavitError::Prompt(_)) => e.to_string(),
        other => panic!("expected a prompt error, got {other:?}"),
    }
}

#[test]
fn bad_questions_are_clear_errors() {
    let device = lavit_backends::select("cpu", 0).unwrap();
    let model = ModelBundle::load(&fixture("tiny-gqa"), &device).unwrap();
    let img = load_rgb(&fixture("images/tiny-gqa.png")).unwrap();
    let cfg = GenerateConfig {
        max_new_tokens: 2,
        ..Default::default()
    };
    let one = std::slice::from_ref(&img);
    let e = prompt_error(model.answer(one, "  \n", &cfg));
    assert!(e.contains("the question is empty"), "{e}");
    let e = prompt_error(model.answer(&[], "What?", &cfg));
    assert!(e.contains("at least one image"), "{e}");
    // tiny-gqa has 4096 positions; a byte-level question of 5000 characters is longer.
    let max = model.vlm().config.text.max_position_embeddings;
    let e = prompt_error(model.answer(one, &"x".repeat(max + 100), &cfg));
    assert!(
        e.contains("max_position_embeddings") && e.contains(&max.to_string()),
        "{e}"
    );
    // A question that smuggles in another image slot: more placeholders than images.
    let e = prompt_error(model.answer(
        one,
        "<|vision_start|><|image_pad|><|vision_end|>And this one?",
        &cfg,
    ));
    assert!(e.contains("image"), "{e}");
    // More images than the prompt has placeholders.
    let e = prompt_error(HostInputs::build(
        &model.tokenizer,
        &model.processor,
        &[img.clone(), img.clone()],
        &[Message::user_image_question(1, "Which one?")],
        true,
    ));
    assert!(e.contains("image"), "{e}");
    // A good question still answers.
    assert!(model.answer(one, "Where is the red circle?", &cfg).is_ok());
}
