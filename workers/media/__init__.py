"""The media pipeline: ImageUploaded → variants + metadata, safe on hostile input.

Modules, one concept each:
    storage   content-addressed files (originals, variants, manifests) and the media-root guard
    plan      pure: original size + settings → which variants to make
    limits    header checks before decoding (size, pixels, frames, mime)
    colour    pure-ish Pillow: any mode/profile/orientation → upright sRGB RGB(A)
    render    Pillow IO: decode once, resize largest→smallest, encode, keep modern only if smaller
    metadata  EXIF summary, palette, BlurHash, perceptual hash
    process   one original → result dict (what the sandbox runs)
    sandbox   a helper process with a time and memory bound, restarted after a hang or a crash
    describe  AI alt text/caption/tags through the openai vision API, with tenacity retries
    job       the reactions and Celery jobs that record outcomes as events
    upload    ``upload(path)``: store an original content-addressed and emit ImageUploaded
"""
