"""The Supervisely SDK's own COCO -> Supervisely conversion, for bench/convert.py.

Runs in the SDK's venv (`.venv-sly/bin/python bench/sly_coco_import.py COCO_DIR OUT_DIR`):
meta from `generate_meta_from_annotation`, each image's annotation from
`create_supervisely_annotation` (the functions the SDK's COCO importer uses), written as a
local Supervisely project with `sly.Project` (images copied, annotations as JSON).
"""

import sys
from pathlib import Path

import supervisely as sly
from pycocotools.coco import COCO
from supervisely.convert.image.coco import coco_helper
from supervisely.convert.image.image_converter import ImageConverter


def main(src: str, dest: str) -> None:
    project = sly.Project(dest, sly.OpenMode.CREATE)
    meta = None
    for ann_file in sorted(Path(src, "annotations").glob("*.json")):
        split = ann_file.stem.removeprefix("instances_")
        coco = COCO(str(ann_file))
        meta = coco_helper.generate_meta_from_annotation(coco, meta)
        project.set_meta(meta)
        dataset = project.create_dataset(split)
        categories = coco.loadCats(coco.getCatIds())
        for image_id, info in coco.imgs.items():
            item = ImageConverter.Item(str(Path(src, "images", split, info["file_name"])))
            item.ann_data = coco.imgToAnns[image_id]
            item.set_shape((info["height"], info["width"]))
            ann = coco_helper.create_supervisely_annotation(item, meta, categories)
            dataset.add_item_file(info["file_name"], item.path, ann=ann, _validate_item=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
