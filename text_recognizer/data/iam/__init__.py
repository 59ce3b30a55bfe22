"""The IAM Handwriting Database, for people who have it: get, verify, parse, split, crop.

The official layout (found in ``root`` or in one folder below it, as archives often add a top folder)::

    xml/<form-id>.xml         form > handwritten-part > line(id, text) > word > cmp(x, y, width, height)
    forms/<form-id>.png       the scanned forms (or formsA-D/, formsE-H/, formsI-Z/ as the tarballs unpack)
    task/trainset.txt         the Large Writer Independent Text Line Recognition Task: line ids a line;
    task/validationset1.txt   also found in root or largeWriterIndependentTextLineRecognitionTask/
    task/validationset2.txt
    task/testset.txt

A line's box is the union of its words' ``cmp`` boxes, a paragraph's the union of its lines'. Splits are
mapped at form level (val = validationset1 + validationset2). Without the task files, forms are split by
writer, deterministically, so that no writer is in two splits.

One module a job: :mod:`.layout` (finding the files), :mod:`.forms` (XML parsing), :mod:`.splits` (splits and
the index of forms), :mod:`.source` (the data sources) and :mod:`.download` (preparation).
"""
