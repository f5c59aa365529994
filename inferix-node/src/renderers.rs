//! Several renderers behind one [`Renderer`]: each request goes to the
//! renderer of its scene format, so one worker serves glTF scenes with the
//! path tracer and `.blend` scenes with Blender.

use std::sync::Arc;

use async_trait::async_trait;
use inferix_core::image::Rect;
use inferix_core::renderer::{RenderError, RenderRequest, RenderedFrame, Renderer, SceneFormat};

/// Renderers by scene format; the first that reads a format serves it.
pub struct RendererSet {
    renderers: Vec<Arc<dyn Renderer>>,
    formats: Vec<SceneFormat>,
}

impl RendererSet {
    /// A set of `renderers`, earlier ones preferred.
    pub fn new(renderers: Vec<Arc<dyn Renderer>>) -> Self {
        let mut formats = Vec::new();
        for r in &renderers {
            for f in r.formats() {
                if !formats.contains(f) {
                    formats.push(*f);
                }
            }
        }
        Self { renderers, formats }
    }

    fn for_format(&self, format: SceneFormat) -> Result<&Arc<dyn Renderer>, RenderError> {
        self.renderers
            .iter()
            .find(|r| r.formats().contains(&format))
            .ok_or(RenderError::UnsupportedFormat(format))
    }
}

#[async_trait]
impl Renderer for RendererSet {
    fn name(&self) -> &str {
        "set"
    }

    fn formats(&self) -> &[SceneFormat] {
        &self.formats
    }

    /// Every member's class, so that two nodes compare crops exactly only
    /// when all their renderers are the same builds.
    fn device_class(&self) -> String {
        self.renderers
            .iter()
            .map(|r| r.device_class())
            .collect::<Vec<_>>()
            .join("+")
    }

    fn device_class_for(&self, format: SceneFormat) -> String {
        self.for_format(format)
            .map_or_else(|_| self.device_class(), |r| r.device_class_for(format))
    }

    async fn render(&self, request: RenderRequest) -> Result<Vec<RenderedFrame>, RenderError> {
        self.for_format(request.format)?.render(request).await
    }

    async fn render_crops(
        &self,
        request: RenderRequest,
        crops: &[Rect],
    ) -> Result<Vec<RenderedFrame>, RenderError> {
        self.for_format(request.format)?
            .render_crops(request, crops)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferix_core::image::Image;
    use inferix_core::renderer::RenderSettings;

    struct Flat(SceneFormat, f32);

    #[async_trait]
    impl Renderer for Flat {
        fn name(&self) -> &str {
            "flat"
        }
        fn formats(&self) -> &[SceneFormat] {
            std::slice::from_ref(&self.0)
        }
        fn device_class(&self) -> String {
            format!("flat-{:?}", self.0)
        }
        async fn render(&self, r: RenderRequest) -> Result<Vec<RenderedFrame>, RenderError> {
            let (w, h) = r
                .crop
                .map(|c| (c.width, c.height))
                .unwrap_or((r.settings.width, r.settings.height));
            let mut image = Image::new(w, h);
            image.set(0, 0, [self.1; 3]);
            Ok(r.frames
                .iter()
                .map(|&frame| RenderedFrame {
                    frame,
                    image: image.clone(),
                })
                .collect())
        }
    }

    fn request(format: SceneFormat) -> RenderRequest {
        RenderRequest {
            scene: "scene".into(),
            format,
            frames: vec![1, 2],
            settings: RenderSettings {
                width: 8,
                height: 4,
                ..RenderSettings::default()
            },
            crop: None,
            progress: None,
        }
    }

    #[tokio::test]
    async fn requests_go_to_the_renderer_of_their_format() {
        let set = RendererSet::new(vec![
            Arc::new(Flat(SceneFormat::Gltf, 0.25)),
            Arc::new(Flat(SceneFormat::Blend, 0.75)),
        ]);
        assert_eq!(set.formats(), &[SceneFormat::Gltf, SceneFormat::Blend]);
        assert_eq!(set.device_class(), "flat-Gltf+flat-Blend");
        assert_eq!(set.device_class_for(SceneFormat::Gltf), "flat-Gltf");
        assert_eq!(set.device_class_for(SceneFormat::Blend), "flat-Blend");
        let gltf_only = RendererSet::new(vec![Arc::new(Flat(SceneFormat::Gltf, 0.25))]);
        assert_eq!(
            gltf_only.device_class_for(SceneFormat::Blend),
            "flat-Gltf",
            "a format it cannot render: the whole set's class"
        );
        let g = set.render(request(SceneFormat::Gltf)).await.unwrap();
        let b = set.render(request(SceneFormat::Blend)).await.unwrap();
        assert_eq!(g[0].image.get(0, 0), [0.25; 3]);
        assert_eq!(b[1].image.get(0, 0), [0.75; 3]);
        let crops = set
            .render_crops(
                request(SceneFormat::Blend),
                &[Rect::new(0, 0, 2, 2), Rect::new(1, 1, 3, 2)],
            )
            .await
            .unwrap();
        assert_eq!(crops.len(), 4, "two frames, two crops each");
        assert_eq!((crops[1].image.width, crops[1].image.height), (3, 2));
        let only_gltf = RendererSet::new(vec![Arc::new(Flat(SceneFormat::Gltf, 0.1))]);
        assert!(matches!(
            only_gltf.render(request(SceneFormat::Blend)).await,
            Err(RenderError::UnsupportedFormat(SceneFormat::Blend))
        ));
    }
}
