//! The gallery of bundled, credited sample X-rays (held out from training).

use leptos::prelude::*;

use super::{AppState, Input, Source, browser, error::WebError};
use crate::ml::subset::GalleryItem as Sample;

/// Sample thumbnails; a click (or Enter) classifies one.
#[component]
pub fn Gallery() -> impl IntoView {
    let state = expect_context::<AppState>();
    let samples = LocalResource::new(|| async {
        let bytes = browser::fetch_bytes(
            &browser::asset_url("public/samples/manifest.json"),
            |_, _| {},
        )
        .await?;
        serde_json::from_slice::<Vec<Sample>>(&bytes).map_err(|e| WebError::Json {
            what: "the samples' manifest".into(),
            detail: e.to_string(),
        })
    });
    let classify = move |s: Sample| {
        state.submit(vec![Input {
            name: s.file.clone(),
            source: Source::Url(browser::asset_url(&format!("public/samples/{}", s.file))),
            truth: Some(s.label),
        }])
    };
    view! {
        <section class="panel">
            <h2>"Sample X-rays"</h2>
            <p class="muted">
                "Real images from the Kermany et al. (2018) training folder, held out from training. Click one to classify it; its true label is shown beside the prediction."
            </p>
            <Suspense fallback=|| view! { <p>"Loading samples…"</p> }>
                {move || {
                    samples
                        .get()
                        .map(|r| match r {
                            Err(e) => view! { <p class="error">{format!("samples unavailable: {e}")}</p> }.into_any(),
                            Ok(list) => {
                                let all = list.clone();
                                view! {
                                    <p>
                                        <button
                                            data-testid="classify-all-samples"
                                            on:click=move |_| all.iter().cloned().for_each(classify)
                                        >
                                            "Classify all samples"
                                        </button>
                                    </p>
                                    <ul class="gallery">
                                        {list
                                            .into_iter()
                                            .map(|s| {
                                                let src = browser::asset_url(&format!("public/samples/{}", s.file));
                                                let alt = format!("{} sample {}", s.label, s.file);
                                                let s2 = s.clone();
                                                view! {
                                                    <li>
                                                        <button
                                                            class="sample"
                                                            data-testid="sample"
                                                            data-file=s.file.clone()
                                                            data-label=s.label.name()
                                                            on:click=move |_| classify(s2.clone())
                                                        >
                                                            <img src=src alt=alt.clone() loading="lazy" />
                                                            <span>{s.label.name()}</span>
                                                        </button>
                                                    </li>
                                                }
                                            })
                                            .collect_view()}
                                    </ul>
                                }
                                    .into_any()
                            }
                        })
                }}
            </Suspense>
        </section>
    }
}
