from genlab.worlds.faces.scene import (FACTOR_NAMES, FACTORS, N_FACTORS, check_factors, denormalize_factors, eye_boxes, faces,
                               neutral_factors, normalize_factors, render_faces, render_passes, render_sequence,
                               sample_factors, split_factors, NEUTRAL, MIN_RESOLUTION, N_TRAIN, N_TEST, TEST_DETAIL_OFFSET,
                               RENDER_PASSES, render_pass, LAYERS, Scene)
