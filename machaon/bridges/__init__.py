"""Layer 4: bridges to the field's tools, all off the control thread.

- ``machaon.bridges.observers``: the hook interface the applications call (``Observers`` fans a
  control loop's cycles, supervisor events, scene frames, 3D entities and log lines out to run
  logs and live views), and ``BackgroundPublisher``, the bounded drop-oldest queue with its
  publisher thread that every live bridge uses, so the control loop never waits for a client.
- ``machaon.bridges.foxglove_live``: a Foxglove WebSocket server (foxglove-sdk) publishing ``/tf``,
  ``/joint_states``, the controller's target, the supervisor, ``/scene`` and ``/log`` with the run
  logs' topics and schemas (``machaon.robot.topics``); the server and the encoding run in a process
  of their own at idle priority (``machaon.bridges.foxglove_proc``), so the control process only
  sends numbers down a socket.
- ``machaon.bridges.igtl``: an OpenIGTLink server for 3D Slicer / PLUS (messages by pyigtl):
  navigation transforms in mm, planned screws, vertebra surfaces, status.
- ``machaon.bridges.igtl_tracker``: an OpenIGTLink client taking tracked poses from a PLUS-like
  server (``--tracker igtl:HOST:PORT``).
- ``machaon.bridges.ros2``: a run log exported as a ROS 2 bag (rosbags: rosbag2, MCAP storage, CDR).

Which bridge runs is the CLI's choice (layer 7); nothing here picks a backend.
"""
