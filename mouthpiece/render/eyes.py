class EyelidPainter:
    def __init__(self, crop, points, deformer): pass
    def paint(self, frame, moved, blink_r, blink_l): pass
