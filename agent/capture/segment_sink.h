#pragma once

#include "flow/segment.h"

namespace shadowtap::capture {

// Where the capture delivers the segments it reads from the ring buffer.
class SegmentSink {
 public:
  virtual ~SegmentSink() = default;
  virtual void onSegment(const flow::Segment& segment) = 0;
};

}  // namespace shadowtap::capture
